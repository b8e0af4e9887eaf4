import {createHash} from 'node:crypto';

/** Label and annotation keys the launcher puts on everything it creates, and selects on. */
export const LABELS = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  component: 'app.kubernetes.io/component',
  partOf: 'app.kubernetes.io/part-of',
  version: 'app.kubernetes.io/version',
  managedBy: 'app.kubernetes.io/managed-by',
  jobId: 'byol.dev/job-id',
} as const;

/** The raw job id, kept in an annotation because a label value cannot hold every id. */
export const JOB_ID_ANNOTATION = 'byol.dev/job-id';
/** Set by the Job controller on every pod of an Indexed Job. */
export const COMPLETION_INDEX_ANNOTATION = 'batch.kubernetes.io/job-completion-index';
export const MANAGED_BY = 'byol-coordinator';
/** Selects every pod this launcher (in any coordinator restart) created. */
export const WORKER_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY},${LABELS.component}=worker`;

// Pod hostnames are "<job name>-<index>" and must stay a DNS label (63 chars): keep room for "-4095".
const MAX_JOB_NAME = 57;

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 6);
}

/** A DNS-1123 label made from `s`: lower case, [a-z0-9-], starting and ending alphanumeric. */
function dnsLabel(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
}

/**
 * Kubernetes name of the Job and of its headless Service for a byol job id. Deterministic, so a
 * restarted coordinator finds what an earlier one created; ids that had to be changed get a hash suffix
 * so two ids never share a name.
 */
export function k8sJobName(jobId: string): string {
  const plain = `byol-${dnsLabel(jobId)}`;
  if (plain === `byol-${jobId}` && plain.length <= MAX_JOB_NAME) return plain;
  const head = plain.slice(0, MAX_JOB_NAME - 7).replace(/-+$/, '');
  return `${head}-${shortHash(jobId)}`;
}

/** A valid label value for the job id (<= 63 chars, [A-Za-z0-9._-], alphanumeric at both ends). */
export function jobIdLabel(jobId: string): string {
  const clean = jobId.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  if (clean === jobId && clean.length <= 63 && clean.length > 0) return clean;
  return `${clean.slice(0, 56).replace(/[^A-Za-z0-9]+$/, '')}-${shortHash(jobId)}`.replace(/^-/, '');
}

/** Labels on the Job, its pods and its Service (app.kubernetes.io/* recommended labels). */
export function workerLabels(jobId: string, version: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...extra,
    [LABELS.name]: 'byol',
    [LABELS.instance]: k8sJobName(jobId),
    [LABELS.component]: 'worker',
    [LABELS.partOf]: 'byol',
    [LABELS.version]: version,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.jobId]: jobIdLabel(jobId),
  };
}

/** The subset that selects one job's pods (the Service selector); stable across template changes. */
export function jobSelector(jobId: string): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.component]: 'worker',
    [LABELS.jobId]: jobIdLabel(jobId),
  };
}
