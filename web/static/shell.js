// shell.js: what every view of the explorer shares: the page's places, the tenant's state, links, errors and the
// token dialog, the name cache, and the small renderers (badges, evidence chains, the typeahead).
import {ApiError, call, list, num, token} from './api.js';
import {debounce, h, replace} from './dom.js';
import {labelText} from './names.js';

export const main = document.getElementById('main');
export const notice = document.getElementById('notice');
export const tokenDialog = document.getElementById('token-dialog');

export const state = {
  tenants: [], // TenantInfo
  tenant: sessionStorage.getItem('groupgate.tenant') || '',
  labels: new Map(), // id -> Label
  names: new Map(), // id -> ObjectSummary
  view: null, // AbortController of the view on screen
};

// link builds a fragment URL for a view, carrying the tenant.
export function link(path, params = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  if (state.tenant) p.set('t', state.tenant);
  const q = p.toString();
  return '#' + path + (q ? '?' + q : '');
}

export const objectLink = (id, params) => link('/o/' + encodeURIComponent(id), params);

export function clearNotice() { replace(notice); notice.className = ''; }

// showError explains a failed call where the person looks: a wrong or missing token gets a way to fix it.
export function showError(e, into = main) {
  if (!(e instanceof ApiError)) {
    console.error(e);
    e = new ApiError('INTERNAL', 0, String(e && e.message ? e.message : e));
  }
  let title;
  let hint = null;
  switch (e.code) {
    case 'UNAUTHENTICATED':
      title = token() ? 'The server did not accept the bearer token.' : 'This server needs a bearer token.';
      hint = h('p', {}, 'Enter a ', h('code', {}, 'checker'), ' (or ', h('code', {}, 'writer'),
        ') token from the server\'s token file. ',
        h('button', {type: 'button', class: 'primary', onclick: () => openTokenDialog()}, 'Enter token'));
      break;
    case 'PERMISSION_DENIED':
      title = 'This token may not do that.';
      break;
    case 'NOT_FOUND':
      title = 'Not found.';
      break;
    case 'INVALID_ARGUMENT':
      title = 'The request was refused as malformed.';
      break;
    case 'UNAVAILABLE':
      title = 'The server cannot be reached.';
      break;
    default:
      title = 'The request failed.';
  }
  const box = h('div', {class: 'error', role: 'alert'},
    h('p', {class: 'error-title'}, h('span', {'aria-hidden': 'true'}, '✖ '), title),
    h('p', {}, h('code', {}, e.code), ' ', e.message),
    e.fieldViolations.length ? h('ul', {}, e.fieldViolations.map((v) => h('li', {}, h('code', {}, v.field), ': ', v.description))) : null,
    hint);
  if (into === main) replace(main, box);
  else into.appendChild(box);
  if (e.code === 'UNAUTHENTICATED') openTokenDialog(title);
}

export function openTokenDialog(why) {
  if (tokenDialog.open) return;
  const input = document.getElementById('token-input');
  input.value = '';
  document.getElementById('token-reason').textContent = why || '';
  tokenDialog.showModal();
  input.focus();
}

// names fills the name cache for ids (principals; label ids are known from the labels list).
export async function names(ids, signal) {
  const missing = [...new Set(ids)].filter((id) => id && !state.names.has(id) && !state.labels.has(id));
  for (let i = 0; i < missing.length; i += 1000) {
    const resp = await call('lookupObjects', {tenantId: state.tenant, ids: missing.slice(i, i + 1000)}, signal);
    for (const o of list(resp.objects)) state.names.set(o.id, o);
  }
}

export function remember(objs) { for (const o of objs) if (o && o.id) state.names.set(o.id, o); }

export function revisionLine(rev, what) {
  return h('p', {class: 'rev-line'}, what ? what + ' · ' : '', 'tenant ', h('strong', {}, state.tenant),
    ' · revision ', h('strong', {class: 'revision'}, String(num(rev))));
}

// ---------- small renderers ----------

export function kindBadge(o) {
  if (!o) return h('span', {class: 'badge'}, 'object');
  switch (o.kind) {
    case 'OBJECT_KIND_GROUP': return h('span', {class: 'badge kind-group'}, 'group');
    case 'OBJECT_KIND_SERVICE_PRINCIPAL': return h('span', {class: 'badge kind-app'}, 'app');
    case 'OBJECT_KIND_USER':
      return o.userType === 'USER_TYPE_GUEST'
        ? h('span', {class: 'badge guest', title: 'guest user'}, h('span', {'aria-hidden': 'true'}, '⚠ '), 'guest')
        : h('span', {class: 'badge kind-user'}, 'user');
  }
  return h('span', {class: 'badge'}, 'object');
}

export function labelBadge(labelId) {
  if (!labelId) return h('span', {class: 'badge nolabel'}, 'no label');
  const l = state.labels.get(labelId);
  return h('span', {class: 'badge label', title: l ? labelText(l) : labelId}, 'label: ', l ? l.displayName : labelId,
    l && !l.guestsAllowed ? h('span', {class: 'noguests'}, ' (no guests)') : null);
}

export function displayName(id) {
  const o = state.names.get(id);
  if (o) return o.displayName || o.id;
  const l = state.labels.get(id);
  if (l) return 'label ' + (l.displayName || l.id);
  return id;
}

// containerFirst orders an evidence path the way every chain on the page reads: the outer group first. The API
// gives the nested-group label rules' evidence as the edge [member group, labelled group] (documented in the
// README's examples and relied on by scripts), every other path already starts at the outer group; so a path of
// two that ends at the group the answer is about, without starting there, is turned round.
export function containerFirst(path, container) {
  path = list(path);
  return container && path.length === 2 && path[1] === container && path[0] !== container ? [path[1], path[0]] : path;
}

// chain draws an evidence path as a chain of named objects.
export function chain(ids, mark) {
  ids = list(ids);
  if (!ids.length) return null;
  const text = ids.map(displayName).join(' → ');
  return h('ol', {class: 'chain', 'aria-label': 'path: ' + text},
    ids.map((id) => {
      const o = state.names.get(id);
      const inner = [h('span', {class: 'name'}, displayName(id)), ' ', h('code', {class: 'id'}, id)];
      const cls = 'link' + (o && o.userType === 'USER_TYPE_GUEST' ? ' is-guest' : '') + (mark && mark.has(id) ? ' marked' : '');
      const guest = o && o.userType === 'USER_TYPE_GUEST' ? h('span', {class: 'badge guest'}, h('span', {'aria-hidden': 'true'}, '⚠ '), 'guest') : null;
      return h('li', {class: cls},
        o ? h('a', {href: objectLink(id), class: 'pill'}, inner, guest) : h('span', {class: 'pill'}, inner));
    }));
}

export function loadingLine(text) { return h('p', {class: 'loading'}, text || 'Loading…'); }

// typeahead wires an input to SearchObjects through a datalist (keyboard and screen-reader friendly by default)
// and returns the datalist, to be put in the page beside the input.
export function typeahead(input, kinds, signal) {
  const dl = h('datalist', {id: input.id + '-options'});
  input.setAttribute('list', dl.id);
  input.setAttribute('autocomplete', 'off');
  input.addEventListener('input', debounce(async () => {
    const q = input.value.trim();
    if (!q) return;
    try {
      const resp = await call('searchObjects', {tenantId: state.tenant, query: q, kinds, limit: 10}, signal);
      remember(list(resp.objects));
      replace(dl, list(resp.objects).map((o) => h('option', {value: o.id}, `${o.displayName || o.id} (${kindWord(o)})`)));
    } catch { /* a typeahead failure is not worth an alarm: the submit reports errors */ }
  }, 150));
  return dl;
}

export function kindWord(o) {
  if (o.kind === 'OBJECT_KIND_GROUP') return 'group';
  if (o.kind === 'OBJECT_KIND_SERVICE_PRINCIPAL') return 'app';
  return o.userType === 'USER_TYPE_GUEST' ? 'guest user' : 'user';
}


// reroute draws the view of the current URL again: a view whose form leads to the URL already shown.
let rerouteHook = () => {};
export function onReroute(f) { rerouteHook = f; }
export function reroute() { return rerouteHook(); }
