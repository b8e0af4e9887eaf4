/** Why a worker pod is gone, as reported through Launcher.onLoss. */
export type PodLossReason = 'evicted' | 'deleted' | 'failed';

// DisruptionTarget reasons that mean the cluster took the pod away (eviction API, scheduler preemption,
// node pressure, node shutdown / taint manager).
const EVICTION_REASONS = new Set([
  'EvictionByEvictionAPI',
  'PreemptionByScheduler',
  'PreemptionByKubeScheduler',
  'TerminationByKubelet',
  'DeletionByTaintManager',
  'DeletionByPodGC',
]);

function wasEvicted(pod: any): boolean {
  if (pod?.status?.reason === 'Evicted' || pod?.status?.reason === 'Preempting') return true;
  const conds: any[] = pod?.status?.conditions ?? [];
  return conds.some((c) => c?.type === 'DisruptionTarget' && c?.status === 'True' &&
    (EVICTION_REASONS.has(c?.reason) || !c?.reason));
}

/**
 * Classify one watch event on a worker pod: the loss it means, or null when the pod is still there
 * or ended normally. A pod is lost when it is DELETED, or when it reaches phase Failed; eviction and
 * preemption win over the plain reasons, because the coordinator treats them as preemptions.
 * A pod merely marked for deletion is not lost yet: its agent got SIGTERM and checkpoints first.
 */
export function podLoss(type: string, pod: any): PodLossReason | null {
  if (type === 'DELETED') {
    if (pod?.status?.phase === 'Succeeded') return null;
    return wasEvicted(pod) ? 'evicted' : 'deleted';
  }
  if ((type === 'MODIFIED' || type === 'ADDED') && pod?.status?.phase === 'Failed') {
    return wasEvicted(pod) ? 'evicted' : 'failed';
  }
  return null;
}
