// whatif.js: the what-if view. Each question is one entry of OPERATIONS: its form fields, the RPC it asks, the
// request body, and the sentence that restates it above the answer.
import {call, list, num} from './api.js';
import {h, replace} from './dom.js';
import {ruleTitle} from './names.js';
import {
  chain, containerFirst, displayName, link, loadingLine, main, names, objectLink, reroute, revisionLine, showError,
  state, typeahead,
} from './shell.js';

const splitIDs = (s) => s.split(/[\s,]+/).filter(Boolean);

// OPERATIONS: op -> {title, rpc, fields(f), body(v), summary(v, words), evidence(path, v)}. fields builds the
// form from the helpers in f; v(name) reads a submitted field; words holds who(id) and labelName(id).
const OPERATIONS = {
  'add-member': {
    title: 'Add a member',
    rpc: 'canAddMember',
    fields: (f) => [f.id('group', 'Group', ['OBJECT_KIND_GROUP'], 'grp-finance'),
      f.id('member', 'New member (user, group or app)', [], 'grp-engineering')],
    body: (v) => ({groupId: v('group'), memberId: v('member'), actorId: v('actor')}),
    summary: (v, w) => [' adds ', w.who(v('member')), ' as a direct member of ', w.who(v('group'))],
    // The nested-group label rules' evidence is the edge [member, group]: drawn outer group first.
    evidence: (path, v) => containerFirst(path, v('group')),
  },
  'apply-label': {
    title: 'Apply a first label',
    rpc: 'canApplyLabel',
    fields: (f) => [f.id('group', 'Group', ['OBJECT_KIND_GROUP'], 'grp-engineering'), f.label('label', 'Label', false)],
    body: (v) => ({groupId: v('group'), labelId: v('label'), actorId: v('actor')}),
    summary: (v, w) => [' applies the label ', h('strong', {}, w.labelName(v('label'))), ' to ', w.who(v('group'))],
  },
  'change-label': {
    title: 'Change or remove a label',
    rpc: 'canChangeLabel',
    fields: (f) => [f.id('group', 'Group', ['OBJECT_KIND_GROUP'], 'grp-project-x'), f.label('label', 'New label', true)],
    body: (v) => ({groupId: v('group'), labelId: v('label'), actorId: v('actor')}),
    summary: (v, w) => (v('label')
      ? [' changes the label of ', w.who(v('group')), ' to ', h('strong', {}, w.labelName(v('label')))]
      : [' removes the label of ', w.who(v('group'))]),
  },
  'create-role-group': {
    title: 'Create a role-assignable group',
    rpc: 'canCreateRoleGroup',
    fields: (f) => [
      f.text('name', 'Display name', 'Helpdesk Tier 1'),
      f.choice('kind', 'Kind', [['GROUP_KIND_SECURITY', 'security group'], ['GROUP_KIND_MICROSOFT_365', 'Microsoft 365 group'],
        ['GROUP_KIND_MAIL_ENABLED_SECURITY', 'mail-enabled security group'], ['GROUP_KIND_DISTRIBUTION', 'distribution list']]),
      f.choice('membership', 'Membership', [['MEMBERSHIP_ASSIGNED', 'assigned'], ['MEMBERSHIP_DYNAMIC', 'dynamic']]),
      f.choice('label', 'Label', [['', '(none)'], ...[...state.labels.values()].map((l) => [l.id, `${l.displayName} (${l.id})`])]),
      f.text('owners', 'Owners', 'u-priya', 'ids, separated by commas'),
      f.text('members', 'Initial members', 'u-erin, u-dave', 'ids, separated by commas'),
    ],
    body: (v) => ({actorId: v('actor'), group: {displayName: v('name'), kind: v('kind') || 'GROUP_KIND_SECURITY',
      membership: v('membership') || 'MEMBERSHIP_ASSIGNED', labelId: v('label'), isAssignableToRole: true,
      owners: splitIDs(v('owners')), members: splitIDs(v('members'))}}),
    summary: (v) => [' creates the role-assignable group ', h('strong', {}, v('name') || '(unnamed)')],
  },
};

export async function whatIfView(params, signal) {
  const op = OPERATIONS[params.get('op')] ? params.get('op') : 'add-member';
  const v = (k) => params.get(k) || '';
  const field = (id, text, input, help) => h('div', {class: 'field', 'data-field': id},
    h('label', {for: 'w-' + id}, text), input, help ? h('p', {class: 'hint'}, help) : null);
  // The form helpers OPERATIONS' fields use.
  const f = {
    id: (id, text, kinds, placeholder) => {
      const el = h('input', {id: 'w-' + id, name: id, value: v(id), placeholder, spellcheck: 'false'});
      return field(id, text, [el, typeahead(el, kinds, signal)]);
    },
    label: (id, text, allowNone) => field(id, text, h('select', {id: 'w-' + id, name: id},
      allowNone ? h('option', {value: '', selected: !v(id)}, '(remove the label)') : null,
      [...state.labels.values()].map((l) => h('option', {value: l.id, selected: v(id) === l.id}, `${l.displayName} (${l.id}, priority ${num(l.priority)})`)))),
    text: (id, text, placeholder, help) => field(id, text, h('input', {id: 'w-' + id, name: id, value: v(id), placeholder}), help),
    choice: (id, text, options) => field(id, text, h('select', {id: 'w-' + id, name: id},
      options.map(([k, t]) => h('option', {value: k, selected: v(id) === k}, t)))),
  };
  const opSelect = h('select', {id: 'w-op', name: 'op'}, Object.entries(OPERATIONS).map(([k, o]) => h('option', {value: k, selected: k === op}, o.title)));
  const fields = h('div', {class: 'fields'});
  const renderFields = (which) => replace(fields,
    f.id('actor', 'Actor (who makes the change)', ['OBJECT_KIND_USER', 'OBJECT_KIND_SERVICE_PRINCIPAL'], 'u-gary'),
    OPERATIONS[which].fields(f));
  renderFields(op);
  opSelect.addEventListener('change', () => renderFields(opSelect.value));
  const result = h('section', {id: 'whatif-result', 'aria-live': 'polite'});
  const form = h('form', {class: 'whatif', id: 'whatif-form'},
    field('op', 'Change', opSelect), fields,
    h('div', {class: 'buttons'}, h('button', {type: 'submit', class: 'primary', id: 'whatif-submit'}, 'Ask groupgate')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = {};
    for (const [k, val] of new FormData(form).entries()) p[k] = String(val).trim();
    p.go = '1';
    const next = link('/whatif', p);
    if (location.hash === next) reroute(); else location.hash = next;
  });
  replace(main, h('h1', {}, 'What-if'),
    h('p', {class: 'hint'}, 'Ask before changing Entra: both verdicts, every rule broken, and the evidence. Nothing is written.'),
    form, result);
  if (params.get('go') === '1') await runWhatIf(OPERATIONS[op], v, result, signal);
}

async function runWhatIf(operation, v, box, signal) {
  replace(box, loadingLine('Asking…'));
  let resp;
  try {
    resp = await call(operation.rpc, {tenantId: state.tenant, ...operation.body(v)}, signal);
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
  const evidence = operation.evidence || ((path) => list(path));
  const item = (x, kind) => h('li', {class: 'violation ' + kind},
    h('p', {class: 'rule'}, h('strong', {}, ruleTitle(x.rule)), ' ', h('code', {}, x.rule), ' ',
      kind === 'violation' ? (x.enforcedByEntra
        ? h('span', {class: 'badge entra'}, 'Entra enforces this')
        : h('span', {class: 'badge strict'}, 'groupgate only: Entra lets it through')) : h('span', {class: 'badge warn'}, 'warning')),
    h('p', {class: 'message'}, x.message),
    list(x.path).length ? h('div', {class: 'evidence'}, h('span', {class: 'hint'}, 'Evidence (outer group first): '),
      chain(evidence(x.path, v))) : null);
  const words = {
    who: (id) => id ? h('a', {href: objectLink(id)}, displayName(id)) : '(nobody)',
    labelName: (id) => (id ? (state.labels.get(id) || {}).displayName || id : 'no label'),
  };
  replace(box,
    h('h2', {}, 'Answer'),
    h('p', {id: 'whatif-question'}, words.who(v('actor')), operation.summary(v, words)),
    h('div', {class: 'verdicts'}, verdict('groupgate (strict policy)', d.verdict, 'verdict-strict'), verdict('Entra ID today', d.entraVerdict, 'verdict-entra')),
    d.verdict !== d.entraVerdict ? h('p', {class: 'disagree'}, h('span', {'aria-hidden': 'true'}, '⚠ '),
      'groupgate and Entra disagree: Entra would ', d.entraVerdict === 'VERDICT_ALLOW' ? 'allow' : 'refuse', ' this change.') : null,
    h('h3', {}, `Violations (${violations.length})`),
    violations.length ? h('ul', {class: 'violations', id: 'violations'}, violations.map((x) => item(x, 'violation'))) : h('p', {}, h('span', {'aria-hidden': 'true'}, '✔ '), 'No rule is broken.'),
    h('h3', {}, `Warnings (${warnings.length})`),
    warnings.length ? h('ul', {class: 'violations', id: 'warnings'}, warnings.map((x) => item(x, 'warning'))) : h('p', {}, 'None.'),
    revisionLine(d.revision, 'decision'));
}
