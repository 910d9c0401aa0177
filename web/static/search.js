// search.js: the search view (ids and display names; Enter opens the first hit).
import {call, list} from './api.js';
import {debounce, h, replace} from './dom.js';
import {kindBadge, labelBadge, link, main, names, objectLink, remember, revisionLine, showError, state} from './shell.js';

export async function searchView(params, signal) {
  const input = h('input', {id: 'search-input', type: 'search', placeholder: 'group or user: id or display name',
    value: params.get('q') || '', 'aria-describedby': 'search-help', autocomplete: 'off', spellcheck: 'false'});
  const results = h('div', {id: 'search-results', 'aria-live': 'polite'});
  const rev = h('div');
  // run searches for the input's text and shows the results; it returns them (none on an error), newest call
  // last: an answer to an older call that comes late is dropped, so it never replaces a newer one.
  let runs = 0;
  const run = async () => {
    const q = input.value.trim();
    const mine = ++runs;
    history.replaceState(null, '', link('/search', {q}));
    if (!q) { replace(results, h('p', {class: 'hint'}, 'Type a few letters of an id or a display name.')); return []; }
    try {
      const resp = await call('searchObjects', {tenantId: state.tenant, query: q, limit: 20}, signal);
      if (mine !== runs) return null;
      const objs = list(resp.objects);
      remember(objs);
      replace(rev, revisionLine(resp.revision));
      if (!objs.length) { replace(results, h('p', {class: 'hint'}, 'Nothing matches ', h('q', {}, q), '.')); return objs; }
      replace(results, h('ul', {class: 'results'}, objs.map((o) => h('li', {},
        h('a', {href: objectLink(o.id)}, h('span', {class: 'name'}, o.displayName || o.id)), ' ', h('code', {class: 'id'}, o.id), ' ',
        kindBadge(o), ' ',
        o.kind === 'OBJECT_KIND_GROUP' ? [labelBadge(o.labelId), ' ', o.isAssignableToRole ? h('span', {class: 'badge role'}, 'role-assignable') : null] : null))),
      resp.truncated ? h('p', {class: 'hint'}, 'More objects match: type more to narrow the list.') : null);
      return objs;
    } catch (e) {
      if (e.name !== 'AbortError' && mine === runs) { replace(results); showError(e, results); }
      return [];
    }
  };
  const searchSoon = debounce(run, 120);
  input.addEventListener('input', searchSoon);
  // Enter searches for what is in the box now (a pasted id, typed faster than the pause that starts a search)
  // and opens the first hit; the results on screen may be for an older text.
  input.addEventListener('keydown', async (ev) => {
    if (ev.key !== 'Enter') return;
    ev.preventDefault();
    searchSoon.cancel();
    const objs = await run();
    if (objs && objs.length) location.hash = objectLink(objs[0].id);
  });
  replace(main,
    h('h1', {}, 'Search'),
    h('label', {for: 'search-input', class: 'sr-only'}, 'Search groups, users and apps'),
    input,
    h('p', {id: 'search-help', class: 'hint'}, 'Matches ids and display names, case-insensitively; Enter searches and opens the first result.'),
    results, rev);
  input.focus();
  await run();
}
