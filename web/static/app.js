// app.js: the explorer's views and router. Routes live in the URL fragment (#/o/grp-finance?t=contoso), so
// every view can be linked to and the browser's back button works; the token never goes there.
import {ApiError, call, collect, list, num, setToken, token} from './api.js';
import {debounce, h, limited, replace} from './dom.js';
import {AUDIT_RULES, groupKindName, labelText, ruleTitle} from './names.js';

const main = document.getElementById('main');
const notice = document.getElementById('notice');
const tenantBox = document.getElementById('tenant');
const tokenDialog = document.getElementById('token-dialog');

const state = {
  tenants: [], // TenantInfo
  tenant: sessionStorage.getItem('groupgate.tenant') || '',
  labels: new Map(), // id -> Label
  names: new Map(), // id -> ObjectSummary
  view: null, // AbortController of the view on screen
};

// ---------- routing ----------

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  return {parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || '')};
}

// link builds a fragment URL for a view, carrying the tenant.
function link(path, params = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  if (state.tenant) p.set('t', state.tenant);
  const q = p.toString();
  return '#' + path + (q ? '?' + q : '');
}

const objectLink = (id, params) => link('/o/' + encodeURIComponent(id), params);

async function route() {
  if (state.view) state.view.abort();
  const ctl = new AbortController();
  state.view = ctl;
  clearNotice();
  const {parts, params} = parseHash();
  const t = params.get('t');
  if (t && t !== state.tenant && state.tenants.some((x) => x.tenantId === t)) await switchTenant(t, false);
  const name = parts[0] || 'search';
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!state.tenant) return; // boot shows why
  try {
    switch (name) {
      case 'o': await objectView(parts[1] || '', params, ctl.signal); break;
      case 'whatif': await whatIfView(params, ctl.signal); break;
      case 'audit': await auditView(params, ctl.signal); break;
      default: await searchView(params, ctl.signal);
    }
  } catch (e) {
    if (e.name !== 'AbortError') showError(e);
  }
}

// ---------- errors and the token ----------

function clearNotice() { replace(notice); notice.className = ''; }

// showError explains a failed call where the person looks: a wrong or missing token gets a way to fix it.
function showError(e, into = main) {
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

function openTokenDialog(why) {
  if (tokenDialog.open) return;
  const input = document.getElementById('token-input');
  input.value = '';
  document.getElementById('token-reason').textContent = why || '';
  tokenDialog.showModal();
  input.focus();
}

function bindTokenDialog() {
  document.getElementById('token-button').addEventListener('click', () => openTokenDialog());
  tokenDialog.addEventListener('close', async () => {
    const v = tokenDialog.returnValue;
    if (v === 'save') setToken(document.getElementById('token-input').value.trim());
    else if (v === 'forget') setToken('');
    else return;
    document.getElementById('token-input').value = '';
    updateTokenButton();
    await boot();
  });
  updateTokenButton();
}

function updateTokenButton() {
  const b = document.getElementById('token-button');
  b.textContent = token() ? 'Token ✔' : 'Token';
  b.setAttribute('aria-label', token() ? 'Bearer token set: change or forget it' : 'Enter a bearer token');
}

// ---------- tenants, labels, names ----------

async function boot() {
  replace(main, h('p', {class: 'loading'}, 'Loading…'));
  try {
    const resp = await call('listTenants', {});
    state.tenants = list(resp.tenants);
  } catch (e) {
    state.tenants = [];
    renderTenantPicker();
    showError(e);
    return;
  }
  if (state.tenants.length === 0) {
    renderTenantPicker();
    replace(main, h('div', {class: 'error'}, h('p', {}, 'This server holds no tenant yet.')));
    return;
  }
  const want = parseHash().params.get('t') || state.tenant;
  const pick = state.tenants.some((x) => x.tenantId === want) ? want : state.tenants[0].tenantId;
  try {
    await switchTenant(pick, false);
  } catch (e) {
    showError(e);
    return;
  }
  await route();
}

async function switchTenant(id, reroute = true) {
  state.tenant = id;
  sessionStorage.setItem('groupgate.tenant', id);
  state.names.clear();
  const resp = await call('listLabels', {tenantId: id});
  state.labels = new Map(list(resp.labels).map((l) => [l.id, l]));
  renderTenantPicker();
  if (reroute) location.hash = link('/');
}

function renderTenantPicker() {
  const info = state.tenants.find((x) => x.tenantId === state.tenant);
  const rev = info ? h('span', {class: 'rev', id: 'tenant-revision'}, 'revision ', String(num(info.revision))) : null;
  if (state.tenants.length > 1) {
    const sel = h('select', {id: 'tenant-select', 'aria-label': 'Tenant', onchange: (ev) => switchTenant(ev.target.value).catch(showError)},
      state.tenants.map((x) => h('option', {value: x.tenantId, selected: x.tenantId === state.tenant}, x.tenantId)));
    replace(tenantBox, h('label', {for: 'tenant-select'}, 'Tenant '), sel, ' ', rev);
  } else if (info) {
    replace(tenantBox, 'Tenant ', h('strong', {}, info.tenantId), ' ', rev);
  } else {
    replace(tenantBox);
  }
}

// names fills the name cache for ids (principals; label ids are known from the labels list).
async function names(ids, signal) {
  const missing = [...new Set(ids)].filter((id) => id && !state.names.has(id) && !state.labels.has(id));
  for (let i = 0; i < missing.length; i += 1000) {
    const resp = await call('lookupObjects', {tenantId: state.tenant, ids: missing.slice(i, i + 1000)}, signal);
    for (const o of list(resp.objects)) state.names.set(o.id, o);
  }
}

function remember(objs) { for (const o of objs) if (o && o.id) state.names.set(o.id, o); }

function revisionLine(rev, what) {
  return h('p', {class: 'rev-line'}, what ? what + ' · ' : '', 'tenant ', h('strong', {}, state.tenant),
    ' · revision ', h('strong', {class: 'revision'}, String(num(rev))));
}

// ---------- small renderers ----------

function kindBadge(o) {
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

function labelBadge(labelId) {
  if (!labelId) return h('span', {class: 'badge nolabel'}, 'no label');
  const l = state.labels.get(labelId);
  return h('span', {class: 'badge label', title: l ? labelText(l) : labelId}, 'label: ', l ? l.displayName : labelId,
    l && !l.guestsAllowed ? h('span', {class: 'noguests'}, ' (no guests)') : null);
}

function displayName(id) {
  const o = state.names.get(id);
  if (o) return o.displayName || o.id;
  const l = state.labels.get(id);
  if (l) return 'label ' + (l.displayName || l.id);
  return id;
}

// chain draws an evidence path as a chain of named objects.
function chain(ids, mark) {
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

function loadingLine(text) { return h('p', {class: 'loading'}, text || 'Loading…'); }

// typeahead wires an input to SearchObjects through a datalist (keyboard and screen-reader friendly by default)
// and returns the datalist, to be put in the page beside the input.
function typeahead(input, kinds, signal) {
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

function kindWord(o) {
  if (o.kind === 'OBJECT_KIND_GROUP') return 'group';
  if (o.kind === 'OBJECT_KIND_SERVICE_PRINCIPAL') return 'app';
  return o.userType === 'USER_TYPE_GUEST' ? 'guest user' : 'user';
}

// ---------- search ----------

async function searchView(params, signal) {
  const input = h('input', {id: 'search-input', type: 'search', placeholder: 'group or user: id or display name',
    value: params.get('q') || '', 'aria-describedby': 'search-help', autocomplete: 'off', spellcheck: 'false'});
  const results = h('div', {id: 'search-results', 'aria-live': 'polite'});
  const rev = h('div');
  const run = async () => {
    const q = input.value.trim();
    history.replaceState(null, '', link('/search', {q}));
    if (!q) { replace(results, h('p', {class: 'hint'}, 'Type a few letters of an id or a display name.')); return; }
    try {
      const resp = await call('searchObjects', {tenantId: state.tenant, query: q, limit: 20}, signal);
      const objs = list(resp.objects);
      remember(objs);
      replace(rev, revisionLine(resp.revision));
      if (!objs.length) { replace(results, h('p', {class: 'hint'}, 'Nothing matches ', h('q', {}, q), '.')); return; }
      replace(results, h('ul', {class: 'results'}, objs.map((o) => h('li', {},
        h('a', {href: objectLink(o.id)}, h('span', {class: 'name'}, o.displayName || o.id)), ' ', h('code', {class: 'id'}, o.id), ' ',
        kindBadge(o), ' ',
        o.kind === 'OBJECT_KIND_GROUP' ? [labelBadge(o.labelId), ' ', o.isAssignableToRole ? h('span', {class: 'badge role'}, 'role-assignable') : null] : null))),
      resp.truncated ? h('p', {class: 'hint'}, 'More objects match: type more to narrow the list.') : null);
    } catch (e) {
      if (e.name !== 'AbortError') { replace(results); showError(e, results); }
    }
  };
  input.addEventListener('input', debounce(run, 120));
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      const first = results.querySelector('a');
      if (first) location.hash = first.getAttribute('href');
    }
  });
  replace(main,
    h('h1', {}, 'Search'),
    h('label', {for: 'search-input', class: 'sr-only'}, 'Search groups, users and apps'),
    input,
    h('p', {id: 'search-help', class: 'hint'}, 'Matches ids and display names, case-insensitively; Enter opens the first result.'),
    results, rev);
  input.focus();
  await run();
}

// ---------- object: group or principal ----------

async function objectView(id, params, signal) {
  replace(main, loadingLine());
  const resp = await call('describeObject', {tenantId: state.tenant, id, pageSize: 100}, signal);
  remember([resp.object]);
  if (resp.group) return groupView(resp, params, signal);
  return principalView(resp, params, signal);
}

// A tree node's context: the chain of groups above it, for cycle detection and label judgements.
// ancestors: [{id, labelId, displayName}] from the root down to the parent.
function judge(member, ancestors) {
  const o = member.object || {};
  const flags = [];
  const parent = ancestors[ancestors.length - 1];
  if (o.kind === 'OBJECT_KIND_USER' && o.userType === 'USER_TYPE_GUEST') {
    const blocking = ancestors.find((a) => a.labelId && state.labels.get(a.labelId) && !state.labels.get(a.labelId).guestsAllowed);
    if (blocking) {
      const l = state.labels.get(blocking.labelId);
      flags.push(h('span', {class: 'flag bad'}, h('span', {'aria-hidden': 'true'}, '✖ '),
        `guest in ${blocking.displayName || blocking.id}, whose label ${l.displayName} does not allow guests`));
    }
  }
  if (o.kind === 'OBJECT_KIND_GROUP' && parent && parent.labelId) {
    const pl = state.labels.get(parent.labelId);
    if (!o.labelId) {
      flags.push(h('span', {class: 'flag bad'}, h('span', {'aria-hidden': 'true'}, '✖ '),
        `unlabelled group under labelled ${parent.displayName || parent.id}`));
    } else {
      const cl = state.labels.get(o.labelId);
      if (pl && cl && num(cl.priority) < num(pl.priority)) {
        flags.push(h('span', {class: 'flag bad'}, h('span', {'aria-hidden': 'true'}, '✖ '),
          `label ${cl.displayName} is less restrictive than ${pl.displayName} on ${parent.displayName || parent.id}`));
      }
    }
  }
  return flags;
}

function memberCounts(m) {
  const eff = num(m.effectiveMemberCount);
  const exact = m.effectiveMemberCountExact;
  return h('span', {class: 'counts'}, `${num(m.directMemberCount).toLocaleString('en')} direct · ${exact ? '' : '≥ '}${eff.toLocaleString('en')} effective`);
}

// memberList renders one page of a group's direct members, and a button for the next page.
function memberList(group, page, ancestors, depth, onPath, signal) {
  const ul = h('ul', {class: 'tree', role: 'list'});
  const addPage = (p) => {
    for (const m of list(p.members)) ul.appendChild(treeRow(m, ancestors, depth, onPath, signal));
    const more = ul.querySelector(':scope > li.more');
    if (more) more.remove();
    if (p.nextPageToken) {
      const shown = ul.querySelectorAll(':scope > li.node').length;
      const btn = h('button', {type: 'button', class: 'quiet'}, `Show more members (${shown.toLocaleString('en')} of ${num(p.directMemberCount).toLocaleString('en')} shown)`);
      btn.addEventListener('click', async () => {
        btn.disabled = true;
        btn.textContent = 'Loading…';
        try {
          const next = await call('describeObject', {tenantId: state.tenant, id: group.id, pageSize: 100, pageToken: p.nextPageToken}, signal);
          addPage(next.group);
        } catch (e) {
          btn.disabled = false;
          btn.textContent = 'Show more members (failed: retry)';
          showError(e, ul);
        }
      });
      ul.appendChild(h('li', {class: 'more'}, btn));
    }
  };
  addPage(page);
  if (!list(page.members).length) ul.appendChild(h('li', {class: 'empty'}, 'no direct members'));
  return ul;
}

function treeRow(m, ancestors, depth, onPath, signal) {
  const o = m.object || {};
  const isGroup = o.kind === 'OBJECT_KIND_GROUP';
  const cycle = isGroup && ancestors.some((a) => a.id === o.id);
  const marked = onPath && onPath.has(o.id);
  const li = h('li', {class: 'node' + (marked ? ' marked' : '') + (o.userType === 'USER_TYPE_GUEST' ? ' is-guest' : ''), 'data-id': o.id, 'data-depth': depth});
  const flags = judge(m, ancestors);
  if (flags.length) li.classList.add('flagged');
  let toggle = h('span', {class: 'toggle-space', 'aria-hidden': 'true'});
  let children = null;
  if (isGroup && !cycle && num(m.directMemberCount) > 0) {
    toggle = h('button', {type: 'button', class: 'toggle', 'aria-expanded': 'false', 'aria-label': `Show members of ${o.displayName || o.id}`}, '▸');
    toggle.addEventListener('click', async () => {
      const open = toggle.getAttribute('aria-expanded') === 'true';
      if (open) {
        toggle.setAttribute('aria-expanded', 'false');
        toggle.textContent = '▸';
        if (children) children.hidden = true;
        return;
      }
      toggle.setAttribute('aria-expanded', 'true');
      toggle.textContent = '▾';
      if (children) { children.hidden = false; return; }
      const wait = loadingLine('Loading members…');
      li.appendChild(wait);
      try {
        const resp = await call('describeObject', {tenantId: state.tenant, id: o.id, pageSize: 100}, signal);
        wait.remove();
        remember(list(resp.group.members).map((x) => x.object));
        children = memberList(o, resp.group, [...ancestors, {id: o.id, labelId: o.labelId, displayName: o.displayName}], depth + 1, onPath, signal);
        li.appendChild(children);
        if (onPath) expandAlong(children, onPath);
      } catch (e) {
        wait.remove();
        toggle.setAttribute('aria-expanded', 'false');
        toggle.textContent = '▸';
        if (e.name !== 'AbortError') showError(e, li);
      }
    });
  }
  li.appendChild(h('div', {class: 'row'},
    toggle,
    kindBadge(o), ' ',
    h('a', {href: objectLink(o.id), class: 'name'}, o.displayName || o.id), ' ',
    h('code', {class: 'id'}, o.id), ' ',
    h('span', {class: 'depth'}, `depth ${depth}`), ' ',
    isGroup ? [labelBadge(o.labelId), ' ', memberCounts(m), ' '] : null,
    isGroup && m.containsGuest ? [h('span', {class: 'flag warn'}, h('span', {'aria-hidden': 'true'}, '⚠ '), 'contains a guest'), ' '] : null,
    isGroup && o.isAssignableToRole ? [h('span', {class: 'badge role'}, 'role-assignable'), ' '] : null,
    cycle ? h('span', {class: 'flag bad'}, h('span', {'aria-hidden': 'true'}, '↻ '), 'nesting cycle: already above') : null,
    marked ? h('span', {class: 'flag path'}, h('span', {'aria-hidden': 'true'}, '◆ '), 'on the path') : null,
    flags));
  return li;
}

// expandAlong opens the sub-groups of ul that lie on the marked path.
function expandAlong(ul, onPath) {
  for (const li of ul.querySelectorAll(':scope > li.node')) {
    if (!onPath.has(li.dataset.id)) continue;
    const t = li.querySelector(':scope > .row > button.toggle');
    if (t && t.getAttribute('aria-expanded') === 'false') t.click();
  }
}

async function groupView(resp, params, signal) {
  const o = resp.object;
  const g = resp.group;
  remember(list(g.owners));
  remember(list(g.members).map((m) => m.object));
  const label = g.label;
  // The path to mark (from an audit finding): the ids below this group that are principals.
  const path = (params.get('path') || '').split(',').filter((x) => x && x !== o.id && !state.labels.has(x));
  const onPath = path.length ? new Set(path) : null;
  const rootCtx = [{id: o.id, labelId: o.labelId, displayName: o.displayName}];
  const facts = h('dl', {class: 'facts'},
    h('dt', {}, 'Kind'), h('dd', {}, groupKindName(g.kind), g.membership === 'MEMBERSHIP_DYNAMIC' ? ', dynamic membership' : ', assigned membership',
      g.onPremisesSynced ? ', synced from on-premises AD' : ''),
    h('dt', {}, 'Label'), h('dd', {}, label ? [h('strong', {}, label.displayName || label.id), ' ', h('code', {class: 'id'}, label.id), ' — ',
      labelText(label)] : 'none'),
    h('dt', {}, 'Role-assignable'), h('dd', {}, g.isAssignableToRole ? ['yes', list(g.directoryRoles).length ? ' — roles: ' + list(g.directoryRoles).join(', ') : ''] : 'no'),
    h('dt', {}, 'Owners'), h('dd', {}, list(g.owners).length ? list(g.owners).map((x, i) => [i ? ', ' : '', h('a', {href: objectLink(x.id)}, x.displayName || x.id)]) : 'none'),
    h('dt', {}, 'Members'), h('dd', {}, `${num(g.directMemberCount).toLocaleString('en')} direct, `,
      `${g.effectiveMemberCountExact ? '' : 'at least '}${num(g.effectiveMemberCount).toLocaleString('en')} effective (every level of nesting)`));
  const guests = h('section', {class: 'panel', 'aria-labelledby': 'guests-h'}, h('h2', {id: 'guests-h'}, 'Guests at any depth'), loadingLine());
  const decisions = h('section', {class: 'panel', id: 'decisions', 'aria-labelledby': 'decisions-h'}, h('h2', {id: 'decisions-h'}, 'Recent decisions'), loadingLine());
  const tree = memberList(o, g, rootCtx, 1, onPath, signal);
  replace(main,
    h('p', {class: 'crumbs'}, h('a', {href: link('/search')}, 'Search'), ' › group'),
    h('h1', {}, o.displayName || o.id, ' ', h('code', {class: 'id'}, o.id)),
    revisionLine(resp.revision, 'group'),
    onPath ? h('p', {class: 'path-note'}, h('span', {'aria-hidden': 'true'}, '◆ '), 'Marked path: ', chain([o.id, ...path], onPath)) : null,
    facts,
    h('section', {class: 'panel', 'aria-labelledby': 'tree-h'},
      h('h2', {id: 'tree-h'}, 'Effective members, as a nesting tree'),
      h('p', {class: 'hint'}, 'Direct members first; open a sub-group (▸) to load its members. ',
        'Guests are marked ', h('span', {class: 'badge guest'}, '⚠ guest'), '; rules broken under a label are marked ',
        h('span', {class: 'flag bad'}, '✖'), '.'),
      h('div', {class: 'tree-scroll', tabindex: '0', role: 'region', 'aria-label': 'member tree'}, tree)),
    guests, decisions);
  if (onPath) {
    await names(path, signal).catch(() => {});
    expandAlong(tree, onPath);
  }
  await Promise.all([guestPanel(o, guests, signal), decisionsPanel(o, decisions, signal)]);
}

// decisionsPanel lists the group's newest decisions from the server's decision log (ListDecisions, SPEC §14);
// a server without a Postgres decision log answers FAILED_PRECONDITION, and the panel goes away.
async function decisionsPanel(o, box, signal) {
  let resp;
  try {
    resp = await call('listDecisions', {tenantId: state.tenant, groupId: o.id, limit: 20}, signal);
  } catch (e) {
    if (e.name === 'AbortError') return;
    if (e.code === 'FAILED_PRECONDITION') { box.remove(); return; }
    replace(box, h('h2', {id: 'decisions-h'}, 'Recent decisions'));
    showError(e, box);
    return;
  }
  const rows = list(resp.records);
  const word = (v) => (v || '').replace('VERDICT_', '');
  replace(box, h('h2', {id: 'decisions-h'}, 'Recent decisions'),
    rows.length ? h('table', {class: 'grid', id: 'decisions-table'},
      h('thead', {}, h('tr', {}, ['Time', 'Verdict', 'Question', 'Actor', 'Rules', 'Decision id'].map((c) => h('th', {scope: 'col'}, c)))),
      h('tbody', {}, rows.map((r) => h('tr', {class: word(r.verdict) === 'DENY' ? 'deny' : 'allow'},
        h('td', {}, new Date(r.time).toISOString().replace('T', ' ').slice(0, 19)),
        h('td', {}, h('span', {class: word(r.verdict) === 'DENY' ? 'flag bad' : 'flag'}, word(r.verdict)), ' (Entra ', word(r.entraVerdict), ')'),
        h('td', {}, r.rpc, ' ', [r.memberId, r.labelId, r.action].filter(Boolean).join(' ')),
        h('td', {}, r.actorId ? h('a', {href: objectLink(r.actorId)}, r.actorId) : '', r.caller ? h('span', {class: 'hint'}, ' via ', r.caller) : ''),
        h('td', {}, list(r.violations).concat(list(r.warnings)).map((x) => ruleTitle(x)).join('; ') || '—'),
        h('td', {}, h('code', {class: 'id'}, r.decisionId)))))) :
      h('p', {}, 'No decision about this group is in the log yet.'),
    h('p', {class: 'hint'}, 'From the decision log; ', h('code', {}, 'groupgate decisions --group ' + o.id), ' shows more.'));
}

async function guestPanel(o, box, signal) {
  const max = 50;
  let rows, rev, more;
  try {
    ({items: rows, revision: rev, more} = await collect('effectiveMembers',
      {tenantId: state.tenant, groupId: o.id, types: ['MEMBER_TYPE_GUEST'], pageSize: 100}, 'members', max, signal));
  } catch (e) {
    if (e.name === 'AbortError') return;
    replace(box, h('h2', {id: 'guests-h'}, 'Guests at any depth'));
    showError(e, box);
    return;
  }
  if (!rows.length) {
    replace(box, h('h2', {id: 'guests-h'}, 'Guests at any depth'), h('p', {}, h('span', {'aria-hidden': 'true'}, '✔ '), 'No guest is a member at any depth.'));
    return;
  }
  const paths = new Map();
  await limited(4, rows.slice(0, 20).map((m) => async () => {
    const r = await call('checkMembership', {tenantId: state.tenant, groupId: o.id, principalId: m.id}, signal);
    paths.set(m.id, list(r.path));
  })).catch(() => {});
  await names([...rows.map((m) => m.id), ...[...paths.values()].flat()], signal).catch(() => {});
  replace(box, h('h2', {id: 'guests-h'}, 'Guests at any depth'),
    h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Guest'), h('th', {scope: 'col'}, 'Depth'), h('th', {scope: 'col'}, 'Shortest path'))),
      h('tbody', {}, rows.map((m) => h('tr', {class: 'is-guest'},
        h('td', {}, h('span', {class: 'badge guest'}, h('span', {'aria-hidden': 'true'}, '⚠ '), 'guest'), ' ', h('a', {href: objectLink(m.id)}, displayName(m.id)), ' ', h('code', {class: 'id'}, m.id)),
        h('td', {class: 'num'}, String(num(m.depth))),
        h('td', {}, chain(paths.get(m.id)) || '—'))))),
    more ? h('p', {class: 'hint'}, `The first ${max} guests are shown.`) : null,
    revisionLine(rev, 'guests'));
}

async function principalView(resp, params, signal) {
  const o = resp.object;
  const p = resp.principal || {};
  const isUser = o.kind === 'OBJECT_KIND_USER';
  const labelledOnly = params.get('labelled') === '1';
  const roleOnly = params.get('role') === '1';
  const filters = h('form', {class: 'filters', onsubmit: (ev) => ev.preventDefault()},
    h('label', {}, h('input', {type: 'checkbox', id: 'f-labelled', checked: labelledOnly,
      onchange: (ev) => { location.hash = objectLink(o.id, {labelled: ev.target.checked ? 1 : '', role: roleOnly ? 1 : ''}); }}), ' labelled groups only'),
    ' ',
    h('label', {}, h('input', {type: 'checkbox', id: 'f-role', checked: roleOnly,
      onchange: (ev) => { location.hash = objectLink(o.id, {labelled: labelledOnly ? 1 : '', role: ev.target.checked ? 1 : ''}); }}), ' role-assignable groups only'));
  const groupsBox = h('section', {class: 'panel', 'aria-labelledby': 'groups-h'}, h('h2', {id: 'groups-h'}, 'Groups reached'), filters, loadingLine());
  replace(main,
    h('p', {class: 'crumbs'}, h('a', {href: link('/search')}, 'Search'), isUser ? ' › user' : ' › app'),
    h('h1', {}, o.displayName || o.id, ' ', h('code', {class: 'id'}, o.id), ' ', kindBadge(o)),
    revisionLine(resp.revision, isUser ? 'user' : 'service principal'),
    h('dl', {class: 'facts'},
      h('dt', {}, 'Type'), h('dd', {}, isUser ? (o.userType === 'USER_TYPE_GUEST' ? 'guest (external) user' : 'member user') : 'service principal (application)'),
      h('dt', {}, 'Own roles'), h('dd', {}, list(p.directoryRoles).join(', ') || 'none'),
      h('dt', {}, 'Effective roles'), h('dd', {}, list(p.effectiveRoles).join(', ') || 'none', h('span', {class: 'hint'}, ' (own roles and those of role-assignable groups it is a direct member of)')),
      !isUser ? [h('dt', {}, 'App permissions'), h('dd', {}, list(p.appPermissions).join(', ') || 'none')] : null,
      h('dt', {}, 'Direct groups'), h('dd', {}, `member of ${num(p.directGroupCount)}, owner of ${num(p.ownedGroupCount)}`)),
    groupsBox);
  await groupsPanel(o, groupsBox, filters, labelledOnly, roleOnly, signal);
}

async function groupsPanel(o, box, filters, labelledOnly, roleOnly, signal) {
  const max = 500;
  let rows, rev, more;
  try {
    ({items: rows, revision: rev, more} = await collect('effectiveGroups',
      {tenantId: state.tenant, principalId: o.id, labelledOnly, roleAssignableOnly: roleOnly, pageSize: 200}, 'groups', max, signal));
  } catch (e) {
    if (e.name === 'AbortError') return;
    replace(box, h('h2', {id: 'groups-h'}, 'Groups reached'), filters);
    showError(e, box);
    return;
  }
  await names(rows.map((g) => g.id), signal);
  const pathCells = new Map();
  const table = h('table', {class: 'grid', id: 'groups-table'},
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Group'), h('th', {scope: 'col'}, 'Depth'), h('th', {scope: 'col'}, 'Label'),
      h('th', {scope: 'col'}, 'Role-assignable'), h('th', {scope: 'col'}, 'Shortest path'))),
    h('tbody', {}, rows.map((g) => {
      const cell = h('td', {class: 'path-cell'}, '…');
      pathCells.set(g.id, cell);
      return h('tr', {'data-id': g.id},
        h('td', {}, h('a', {href: objectLink(g.id)}, displayName(g.id)), ' ', h('code', {class: 'id'}, g.id)),
        h('td', {class: 'num'}, String(num(g.depth))),
        h('td', {}, labelBadge(g.labelId)),
        h('td', {}, g.isAssignableToRole ? h('span', {class: 'badge role'}, h('span', {'aria-hidden': 'true'}, '★ '), 'role-assignable') : 'no'),
        cell);
    })));
  replace(box, h('h2', {id: 'groups-h'}, 'Groups reached'), filters,
    rows.length ? table : h('p', {}, 'No group', labelledOnly || roleOnly ? ' of this kind' : '', ' is reached.'),
    more ? h('p', {class: 'hint'}, `The first ${max} groups are shown.`) : null,
    revisionLine(rev, 'groups'));
  // The shortest path of each group, from CheckMembership: the first 100 rows, four calls at a time.
  const first = rows.slice(0, 100);
  await limited(4, first.map((g) => async () => {
    const r = await call('checkMembership', {tenantId: state.tenant, groupId: g.id, principalId: o.id}, signal);
    await names(list(r.path), signal);
    replace(pathCells.get(g.id), chain(list(r.path)) || '—');
  })).catch((e) => { if (e.name !== 'AbortError') showError(e, box); });
  for (const g of rows.slice(100)) replace(pathCells.get(g.id), h('span', {class: 'hint'}, 'open the group to see the path'));
}

// ---------- what-if ----------

const OPS = {
  'add-member': 'Add a member',
  'apply-label': 'Apply a first label',
  'change-label': 'Change or remove a label',
  'create-role-group': 'Create a role-assignable group',
};

async function whatIfView(params, signal) {
  const op = OPS[params.get('op')] ? params.get('op') : 'add-member';
  const v = (k) => params.get(k) || '';
  const field = (id, text, input, help) => h('div', {class: 'field', 'data-field': id},
    h('label', {for: 'w-' + id}, text), input, help ? h('p', {class: 'hint'}, help) : null);
  const idInput = (id, kinds, placeholder) => {
    const el = h('input', {id: 'w-' + id, name: id, value: v(id), placeholder, spellcheck: 'false'});
    return [el, typeahead(el, kinds, signal)];
  };
  const labelSelect = (id, allowNone) => h('select', {id: 'w-' + id, name: id},
    allowNone ? h('option', {value: '', selected: !v(id)}, '(remove the label)') : null,
    [...state.labels.values()].map((l) => h('option', {value: l.id, selected: v(id) === l.id}, `${l.displayName} (${l.id}, priority ${num(l.priority)})`)));
  const opSelect = h('select', {id: 'w-op', name: 'op'}, Object.entries(OPS).map(([k, t]) => h('option', {value: k, selected: k === op}, t)));
  const fields = h('div', {class: 'fields'});
  const renderFields = (which) => {
    const f = [field('actor', 'Actor (who makes the change)', idInput('actor', ['OBJECT_KIND_USER', 'OBJECT_KIND_SERVICE_PRINCIPAL'], 'u-gary'))];
    switch (which) {
      case 'add-member':
        f.push(field('group', 'Group', idInput('group', ['OBJECT_KIND_GROUP'], 'grp-finance')));
        f.push(field('member', 'New member (user, group or app)', idInput('member', [], 'grp-engineering')));
        break;
      case 'apply-label':
        f.push(field('group', 'Group', idInput('group', ['OBJECT_KIND_GROUP'], 'grp-engineering')));
        f.push(field('label', 'Label', labelSelect('label', false)));
        break;
      case 'change-label':
        f.push(field('group', 'Group', idInput('group', ['OBJECT_KIND_GROUP'], 'grp-project-x')));
        f.push(field('label', 'New label', labelSelect('label', true)));
        break;
      case 'create-role-group':
        f.push(field('name', 'Display name', h('input', {id: 'w-name', name: 'name', value: v('name'), placeholder: 'Helpdesk Tier 1'})));
        f.push(field('kind', 'Kind', h('select', {id: 'w-kind', name: 'kind'},
          [['GROUP_KIND_SECURITY', 'security group'], ['GROUP_KIND_MICROSOFT_365', 'Microsoft 365 group'],
            ['GROUP_KIND_MAIL_ENABLED_SECURITY', 'mail-enabled security group'], ['GROUP_KIND_DISTRIBUTION', 'distribution list']]
            .map(([k, t]) => h('option', {value: k, selected: v('kind') === k}, t)))));
        f.push(field('membership', 'Membership', h('select', {id: 'w-membership', name: 'membership'},
          [['MEMBERSHIP_ASSIGNED', 'assigned'], ['MEMBERSHIP_DYNAMIC', 'dynamic']].map(([k, t]) => h('option', {value: k, selected: v('membership') === k}, t)))));
        f.push(field('label', 'Label', h('select', {id: 'w-label', name: 'label'}, h('option', {value: ''}, '(none)'),
          [...state.labels.values()].map((l) => h('option', {value: l.id, selected: v('label') === l.id}, `${l.displayName} (${l.id})`)))));
        f.push(field('owners', 'Owners', h('input', {id: 'w-owners', name: 'owners', value: v('owners'), placeholder: 'u-priya'}), 'ids, separated by commas'));
        f.push(field('members', 'Initial members', h('input', {id: 'w-members', name: 'members', value: v('members'), placeholder: 'u-erin, u-dave'}), 'ids, separated by commas'));
        break;
    }
    replace(fields, f);
  };
  renderFields(op);
  opSelect.addEventListener('change', () => renderFields(opSelect.value));
  const result = h('section', {id: 'whatif-result', 'aria-live': 'polite'});
  const form = h('form', {class: 'whatif', id: 'whatif-form'},
    field('op', 'Change', opSelect), fields,
    h('div', {class: 'buttons'}, h('button', {type: 'submit', class: 'primary', id: 'whatif-submit'}, 'Ask groupgate')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const p = {};
    for (const [k, val] of data.entries()) p[k] = String(val).trim();
    p.go = '1';
    const next = link('/whatif', p);
    if (location.hash === next) route(); else location.hash = next;
  });
  replace(main, h('h1', {}, 'What-if'),
    h('p', {class: 'hint'}, 'Ask before changing Entra: both verdicts, every rule broken, and the evidence. Nothing is written.'),
    form, result);
  if (params.get('go') === '1') await runWhatIf(op, v, result, signal);
}

function splitIDs(s) { return s.split(/[\s,]+/).filter(Boolean); }

async function runWhatIf(op, v, box, signal) {
  replace(box, loadingLine('Asking…'));
  const tenantId = state.tenant;
  let rpc;
  let body;
  switch (op) {
    case 'add-member': rpc = 'canAddMember'; body = {tenantId, groupId: v('group'), memberId: v('member'), actorId: v('actor')}; break;
    case 'apply-label': rpc = 'canApplyLabel'; body = {tenantId, groupId: v('group'), labelId: v('label'), actorId: v('actor')}; break;
    case 'change-label': rpc = 'canChangeLabel'; body = {tenantId, groupId: v('group'), labelId: v('label'), actorId: v('actor')}; break;
    default:
      rpc = 'canCreateRoleGroup';
      body = {tenantId, actorId: v('actor'), group: {displayName: v('name'), kind: v('kind') || 'GROUP_KIND_SECURITY',
        membership: v('membership') || 'MEMBERSHIP_ASSIGNED', labelId: v('label'), isAssignableToRole: true,
        owners: splitIDs(v('owners')), members: splitIDs(v('members'))}};
  }
  let resp;
  try {
    resp = await call(rpc, body, signal);
  } catch (e) {
    if (e.name === 'AbortError') return;
    replace(box);
    showError(e, box);
    return;
  }
  const d = resp.decision || {};
  const violations = list(d.violations);
  const warnings = list(d.warnings);
  await names([v('actor'), v('group'), v('member'), ...violations.flatMap((x) => list(x.path)), ...warnings.flatMap((x) => list(x.path))].filter(Boolean), signal).catch(() => {});
  const verdict = (title, value, id) => {
    const allow = value === 'VERDICT_ALLOW';
    return h('section', {class: 'verdict ' + (allow ? 'allow' : 'deny'), id},
      h('h2', {}, title),
      h('p', {class: 'v'}, h('span', {'aria-hidden': 'true'}, allow ? '✔ ' : '✖ '), allow ? 'ALLOW' : 'DENY'));
  };
  const item = (x, kind) => h('li', {class: 'violation ' + kind},
    h('p', {class: 'rule'}, h('strong', {}, ruleTitle(x.rule)), ' ', h('code', {}, x.rule), ' ',
      kind === 'violation' ? (x.enforcedByEntra
        ? h('span', {class: 'badge entra'}, 'Entra enforces this')
        : h('span', {class: 'badge strict'}, 'groupgate only: Entra lets it through')) : h('span', {class: 'badge warn'}, 'warning')),
    h('p', {class: 'message'}, x.message),
    list(x.path).length ? h('div', {class: 'evidence'}, h('span', {class: 'hint'}, 'Evidence: '), chain(x.path)) : null);
  const who = (id) => id ? h('a', {href: objectLink(id)}, displayName(id)) : '(nobody)';
  const labelName = (id) => (id ? (state.labels.get(id) || {}).displayName || id : 'no label');
  const summary = [who(v('actor'))];
  switch (op) {
    case 'add-member': summary.push(' adds ', who(v('member')), ' as a direct member of ', who(v('group'))); break;
    case 'apply-label': summary.push(' applies the label ', h('strong', {}, labelName(v('label'))), ' to ', who(v('group'))); break;
    case 'change-label': summary.push(v('label') ? [' changes the label of ', who(v('group')), ' to ', h('strong', {}, labelName(v('label')))] : [' removes the label of ', who(v('group'))]); break;
    default: summary.push(' creates the role-assignable group ', h('strong', {}, v('name') || '(unnamed)'));
  }
  replace(box,
    h('h2', {}, 'Answer'),
    h('p', {id: 'whatif-question'}, summary),
    h('div', {class: 'verdicts'}, verdict('groupgate (strict policy)', d.verdict, 'verdict-strict'), verdict('Entra ID today', d.entraVerdict, 'verdict-entra')),
    d.verdict !== d.entraVerdict ? h('p', {class: 'disagree'}, h('span', {'aria-hidden': 'true'}, '⚠ '),
      'groupgate and Entra disagree: Entra would ', d.entraVerdict === 'VERDICT_ALLOW' ? 'allow' : 'refuse', ' this change.') : null,
    h('h3', {}, `Violations (${violations.length})`),
    violations.length ? h('ul', {class: 'violations', id: 'violations'}, violations.map((x) => item(x, 'violation'))) : h('p', {}, h('span', {'aria-hidden': 'true'}, '✔ '), 'No rule is broken.'),
    h('h3', {}, `Warnings (${warnings.length})`),
    warnings.length ? h('ul', {class: 'violations', id: 'warnings'}, warnings.map((x) => item(x, 'warning'))) : h('p', {}, 'None.'),
    revisionLine(d.revision, 'decision'));
}

// ---------- audit ----------

async function auditView(params, signal) {
  const rule = params.get('rule') || '';
  const select = h('select', {id: 'audit-rule'},
    h('option', {value: ''}, 'every rule'),
    AUDIT_RULES.map((r) => h('option', {value: r, selected: r === rule}, `${ruleTitle(r)} (${r})`)));
  select.addEventListener('change', () => { location.hash = link('/audit', {rule: select.value}); });
  const body = h('div', {}, loadingLine('Auditing…'));
  replace(main, h('h1', {}, 'Audit'),
    h('p', {class: 'hint'}, 'Today\'s policy violations in the directory (drift). Each group links to its nesting tree with the evidence path marked.'),
    h('div', {class: 'filters'}, h('label', {for: 'audit-rule'}, 'Rule '), select),
    body);
  const max = 2000;
  const {items: findings, revision: rev, more} = await collect('audit', {tenantId: state.tenant, rules: rule ? [rule] : []}, 'findings', max, signal);
  await names(findings.flatMap((f) => [f.groupId, ...list(f.path)]).filter(Boolean), signal).catch(() => {});
  const counts = new Map();
  for (const f of findings) counts.set(f.rule, (counts.get(f.rule) || 0) + 1);
  replace(body,
    h('p', {id: 'audit-summary'}, `${findings.length}${more ? '+' : ''} finding${findings.length === 1 ? '' : 's'}`,
      counts.size > 1 ? [': ', [...counts].map(([r, n], i) => [i ? ', ' : '', `${n} × ${ruleTitle(r)}`])] : ''),
    findings.length ? h('table', {class: 'grid', id: 'audit-table'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Rule'), h('th', {scope: 'col'}, 'Group'), h('th', {scope: 'col'}, 'Finding'), h('th', {scope: 'col'}, 'Evidence'))),
      h('tbody', {}, findings.map((f) => h('tr', {'data-rule': f.rule},
        h('td', {}, h('strong', {}, ruleTitle(f.rule)), h('br'), h('code', {class: 'rule-code'}, f.rule)),
        h('td', {}, f.groupId ? [h('a', {href: objectLink(f.groupId, {path: list(f.path).join(',')})}, displayName(f.groupId)), h('br'), h('code', {class: 'id'}, f.groupId)] : 'tenant-wide'),
        h('td', {}, f.message),
        h('td', {}, chain(f.path) || '—'))))) : h('p', {}, h('span', {'aria-hidden': 'true'}, '✔ '), 'No findings.'),
    more ? h('p', {class: 'hint'}, `The first ${max} findings are shown; filter by rule to see others.`) : null,
    revisionLine(rev, 'audit'));
}

// ---------- start ----------

window.addEventListener('hashchange', () => { route(); });
bindTokenDialog();
boot();
