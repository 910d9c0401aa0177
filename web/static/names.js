// names.js: words for the API's enum values, for people.

const RULES = {
  RULE_SELF_MEMBERSHIP: 'Group cannot contain itself',
  RULE_ALREADY_MEMBER: 'Already a direct member',
  RULE_NESTING_CYCLE: 'Nesting cycle',
  RULE_DYNAMIC_MEMBERSHIP: 'Dynamic membership',
  RULE_ON_PREMISES_SYNCED: 'Synced from on-premises AD',
  RULE_MAIL_ENABLED_GROUP: 'Managed in Exchange',
  RULE_NESTING_NOT_SUPPORTED: 'Microsoft 365 groups cannot nest groups',
  RULE_ROLE_GROUP_NO_NESTING: 'Role-assignable group cannot nest groups',
  RULE_ROLE_GROUP_PRIVILEGE: 'Role-assignable group needs a privileged actor',
  RULE_INSUFFICIENT_PRIVILEGE: 'Actor lacks the privilege',
  RULE_TENANT_BLOCKS_GUESTS: 'Tenant does not allow guests in groups',
  RULE_LABEL_BLOCKS_GUESTS: 'Label does not allow guests',
  RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE: 'Label does not allow guests (nested)',
  RULE_NESTED_GROUP_UNLABELED: 'Unlabelled group under a labelled one',
  RULE_NESTED_GROUP_LESS_RESTRICTIVE: 'Less restrictive label under a stricter one',
  RULE_PREVIEW_BYPASS: 'Entra preview bypass',
  RULE_LICENSE_REQUIRED: 'Entra ID P1 or P2 licence required',
  RULE_LABELS_NOT_ENABLED: 'Labels not enabled for groups',
  RULE_LABEL_NOT_GROUP_SCOPED: 'Label not scoped to groups',
  RULE_LABEL_NOT_SYNCED: 'Label not synchronised to Entra',
  RULE_LABEL_NOT_PUBLISHED_TO_ACTOR: 'Label not published to the actor',
  RULE_UNSUPPORTED_GROUP_KIND: 'Unsupported group kind',
  RULE_LABEL_IMMUTABLE: 'Label cannot be changed',
  RULE_GROUP_HAS_NESTED_GROUPS: 'Group has nested groups',
  RULE_LABEL_LESS_RESTRICTIVE_THAN_PARENT: 'Label less restrictive than a parent\'s',
  RULE_EXISTING_MEMBERS_NOT_REVALIDATED: 'Existing members not re-validated',
  RULE_ROLE_GROUP_DYNAMIC: 'Role-assignable group with dynamic membership',
  RULE_ROLE_GROUP_LIMIT: 'Too many role-assignable groups',
  RULE_ROLE_ASSIGNABLE_IMMUTABLE: 'Role-assignability cannot be changed',
  RULE_PRIVILEGED_AUTH_ADMIN_REQUIRED: 'Privileged Authentication Administrator required',
  RULE_RESTRICTED_ADMINISTRATIVE_UNIT: 'In a restricted management administrative unit',
};

export function ruleTitle(rule) {
  return RULES[rule] || rule;
}

// AUDIT_RULES are the rules Audit reports (SPEC §4, audit findings).
export const AUDIT_RULES = [
  'RULE_LABEL_BLOCKS_GUESTS', 'RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE', 'RULE_NESTED_GROUP_UNLABELED',
  'RULE_NESTED_GROUP_LESS_RESTRICTIVE', 'RULE_ROLE_GROUP_NO_NESTING', 'RULE_ROLE_GROUP_DYNAMIC',
  'RULE_DYNAMIC_MEMBERSHIP', 'RULE_NESTING_CYCLE', 'RULE_ROLE_GROUP_LIMIT',
];

export function groupKindName(kind) {
  switch (kind) {
    case 'GROUP_KIND_SECURITY': return 'Security group';
    case 'GROUP_KIND_MICROSOFT_365': return 'Microsoft 365 group';
    case 'GROUP_KIND_MAIL_ENABLED_SECURITY': return 'Mail-enabled security group';
    case 'GROUP_KIND_DISTRIBUTION': return 'Distribution list';
  }
  return kind || 'group';
}

// labelText describes a label's policy in words.
export function labelText(l) {
  const parts = [`priority ${Number(l.priority || 0)}`];
  parts.push(l.guestsAllowed ? 'guests allowed' : 'guests not allowed');
  if (!l.groupsScope) parts.push('not scoped to groups');
  if (!l.synced) parts.push('not synced to Entra');
  return parts.join(', ');
}
