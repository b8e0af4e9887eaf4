import type {LaunchRequest} from '../../domain/launcher';
import {JOB_ID_ANNOTATION, jobSelector, k8sJobName, workerLabels} from './names';
import type {WorkerTemplate} from './worker-template';

/** How a job's workers spread over pods: as few pods as devicesPerPod allows, the devices balanced between them. */
export interface PodLayout {
  pods: number;
  /** Devices each pod asks for and its agent offers (GPUs for cuda, CPU slots for cpu). */
  devicesPerPod: number;
}

/**
 * pods = ceil(workers / template.devicesPerPod), then devices = ceil(workers / pods) per pod, so 4 workers
 * with devicesPerPod 8 ask for one pod of 4 GPUs, 16 workers for two pods of 8, 12 for two of 6.
 */
export function layoutFor(workers: number, template: WorkerTemplate): PodLayout {
  const w = Math.max(1, workers);
  const pods = Math.ceil(w / template.devicesPerPod);
  return {pods, devicesPerPod: Math.ceil(w / pods)};
}

/** The pod's grace period: the job's preemption grace period (default 30 s) plus the template's margin. */
export function gracePeriodFor(req: LaunchRequest, template: WorkerTemplate): number {
  const jobGrace = Number(req.spec?.spec?.preemption?.gracePeriodSeconds ?? 30);
  return jobGrace + template.terminationMarginSeconds;
}

function containerResources(template: WorkerTemplate, devices: number): Record<string, any> {
  const r = structuredClone(template.resources);
  if (template.device === 'cuda') {
    // The agent offers every GPU it sees, and the device plugin shows it exactly the GPUs asked for here.
    r.limits = {...(r.limits ?? {}), 'nvidia.com/gpu': String(devices)};
    if (r.requests?.['nvidia.com/gpu'] !== undefined) r.requests['nvidia.com/gpu'] = String(devices);
  }
  return r;
}

/**
 * The Indexed Job that runs one agent per pod for a byol job. Pods get stable hostnames
 * `<name>-<index>.<name>` through the headless Service of the same name (spec.subdomain).
 */
export function buildJob(req: LaunchRequest, template: WorkerTemplate): Record<string, any> {
  const name = k8sJobName(req.jobId);
  const {pods, devicesPerPod} = layoutFor(req.workers, template);
  const labels = workerLabels(req.jobId, template.version, template.labels);
  const devices = template.device === 'cuda' ? 'cuda' : `cpu:${devicesPerPod}`;
  const env = [
    {name: 'BYOL_AGENT_TOKEN', valueFrom: {secretKeyRef: {name: template.tokenSecret.name, key: template.tokenSecret.key}}},
    {name: 'POD_NAME', valueFrom: {fieldRef: {fieldPath: 'metadata.name'}}},
    {name: 'POD_IP', valueFrom: {fieldRef: {fieldPath: 'status.podIP'}}},
    {name: 'BYOL_JOB_ID', value: req.jobId},
    ...template.env,
  ];
  const podSpec: Record<string, any> = {
    restartPolicy: 'Never',
    subdomain: name,
    terminationGracePeriodSeconds: gracePeriodFor(req, template),
    securityContext: template.podSecurityContext,
    containers: [
      {
        name: 'agent',
        image: template.image,
        imagePullPolicy: template.imagePullPolicy,
        command: ['python', '-m', 'byol_worker'],
        // $(VAR) is expanded by the kubelet from the env above: agent id = pod name, host = pod IP.
        args: ['agent', '--coordinator', req.coordinatorAddress, '--devices', devices,
          '--agent-id', '$(POD_NAME)', '--host', '$(POD_IP)'],
        env,
        resources: containerResources(template, devicesPerPod),
        volumeMounts: template.volumeMounts,
      },
    ],
    volumes: template.volumes,
  };
  if (Object.keys(template.nodeSelector).length) podSpec.nodeSelector = template.nodeSelector;
  if (template.tolerations.length) podSpec.tolerations = template.tolerations;
  if (template.serviceAccountName) podSpec.serviceAccountName = template.serviceAccountName;
  if (template.priorityClassName) podSpec.priorityClassName = template.priorityClassName;
  const annotations = {...template.annotations, [JOB_ID_ANNOTATION]: req.jobId};
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {name, labels, annotations},
    spec: {
      completionMode: 'Indexed',
      completions: pods,
      parallelism: pods,
      backoffLimit: template.backoffLimit,
      // Preemption and eviction are the coordinator's business (a new generation), not a Job failure.
      podFailurePolicy: {rules: [{action: 'Ignore', onPodConditions: [{type: 'DisruptionTarget', status: 'True'}]}]},
      template: {metadata: {labels, annotations}, spec: podSpec},
    },
  };
}

/** Headless Service named like the Job: gives each pod the DNS name `<pod hostname>.<name>.<namespace>.svc`. */
export function buildService(req: LaunchRequest, template: WorkerTemplate): Record<string, any> {
  const name = k8sJobName(req.jobId);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      labels: workerLabels(req.jobId, template.version, template.labels),
      annotations: {[JOB_ID_ANNOTATION]: req.jobId},
    },
    spec: {
      clusterIP: 'None',
      // Rendezvous happens before any readiness; the TCPStore port is chosen at run time, so no ports.
      publishNotReadyAddresses: true,
      selector: jobSelector(req.jobId),
    },
  };
}
