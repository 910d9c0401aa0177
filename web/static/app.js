// app.js: the explorer's router and start. Routes live in the URL fragment (#/o/grp-finance?t=contoso), so every
// view can be linked to and the browser's back button works; the token never goes there. Each view is a module of
// its own: search.js, object.js, whatif.js, audit.js; what they share is in shell.js.
import {call, list, num, setToken, token} from './api.js';
import {h, replace} from './dom.js';
import {clearNotice, link, main, onReroute, openTokenDialog, showError, state, tokenDialog} from './shell.js';
import {searchView} from './search.js';
import {objectView} from './object.js';
import {whatIfView} from './whatif.js';
import {auditView} from './audit.js';

const tenantBox = document.getElementById('tenant');

// ---------- routing ----------

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  return {parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || '')};
}

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

async function switchTenant(id, navigate = true) {
  state.tenant = id;
  sessionStorage.setItem('groupgate.tenant', id);
  state.names.clear();
  const resp = await call('listLabels', {tenantId: id});
  state.labels = new Map(list(resp.labels).map((l) => [l.id, l]));
  renderTenantPicker();
  if (navigate) location.hash = link('/');
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

// ---------- start ----------

onReroute(route);
window.addEventListener('hashchange', () => { route(); });
bindTokenDialog();
boot();
