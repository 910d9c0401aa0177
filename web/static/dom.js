// dom.js: a tiny element builder. Text is always set as text (never parsed as HTML), so names from the
// directory cannot inject markup.

// h builds an element: h('a', {href: '#/'}, 'text', child, [more children]). Attributes starting with "on" are
// event listeners; class, aria-*, data-* and the rest are attributes; null/false children are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace puts children in place of el's content.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// debounce delays fn until calls have paused for ms; the returned function's cancel() drops a pending call.
export function debounce(fn, ms) {
  let t = 0;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}

// limited runs fns with at most n in flight.
export async function limited(n, fns) {
  let i = 0;
  const worker = async () => {
    while (i < fns.length) {
      const fn = fns[i++];
      await fn();
    }
  };
  await Promise.all(Array.from({length: Math.min(n, fns.length)}, worker));
}
