/** The OpenAPI 3.1 description of the REST API, served at /openapi.json. */
import {JOB_SCHEMA} from '../spec';

const ref = (name: string) => ({$ref: `#/components/schemas/${name}`});
const json = (schema: object, description: string) => ({description, content: {'application/json': {schema}}});
const err = (description: string) => json(ref('Error'), description);
const idParam = {name: 'id', in: 'path', required: true, schema: {type: 'string'}, description: 'job id'};
const intQuery = (name: string, description: string) => ({name, in: 'query', required: false, schema: {type: 'integer', minimum: 0}, description});
const secured = [{bearer: []}];

export function openApiDocument(version: string): object {
  return {
    openapi: '3.1.0',
    info: {title: 'byol coordinator', version, description: 'Submit and watch BYOL pretraining jobs. Lists return at most `limit` items (default 1000, at most 10000); page with sinceStep / after.'},
    security: secured,
    components: {
      securitySchemes: {bearer: {type: 'http', scheme: 'bearer', description: 'BYOL_API_TOKEN; when the server has one, every route but /healthz and /readyz (and /metrics with --metrics-public) needs it'}},
      schemas: {
        PretrainJob: JOB_SCHEMA,
        Error: {
          type: 'object', required: ['error', 'code'],
          properties: {
            error: {type: 'string'}, code: {type: 'string'},
            issues: {type: 'array', items: {type: 'object', required: ['path', 'message'], properties: {path: {type: 'string'}, message: {type: 'string'}}}},
          },
        },
        JobView: {type: 'object', required: ['id', 'name', 'state', 'step', 'totalSteps'], additionalProperties: true,
          properties: {id: {type: 'string'}, name: {type: 'string'}, state: {enum: ['QUEUED', 'SCHEDULED', 'RUNNING', 'RECOVERING', 'WAITING', 'SUCCEEDED', 'FAILED', 'CANCELLED']},
            step: {type: 'integer'}, totalSteps: {type: 'integer'}, loss: {type: ['number', 'null']}, result: {type: ['object', 'null']}}},
        MetricPoint: {type: 'object', additionalProperties: true, properties: {step: {type: 'integer'}, loss: {type: 'number'}, tau: {type: 'number'}, lr: {type: 'number'}, imagesPerSec: {type: 'number'}}},
        CheckpointRecord: {type: 'object', additionalProperties: true, properties: {step: {type: 'integer'}, path: {type: 'string'}, bytes: {type: 'integer'}, sha256: {type: 'string'}, state: {enum: ['ok', 'bad', 'deleted']}}},
        JobEvent: {type: 'object', additionalProperties: true, properties: {seq: {type: 'integer'}, type: {type: 'string'}, level: {enum: ['info', 'warn', 'error']}, message: {type: 'string'}}},
        WorkerInfo: {type: 'object', additionalProperties: true, properties: {agentId: {type: 'string'}, host: {type: 'string'}, connected: {type: 'boolean'}}},
      },
    },
    paths: {
      '/v1/jobs': {
        get: {summary: 'List jobs, newest first', parameters: [{name: 'state', in: 'query', schema: {type: 'string'}, description: 'comma-separated states'}, intQuery('limit', 'at most this many')],
          responses: {200: json({type: 'array', items: ref('JobView')}, 'jobs')}},
        post: {summary: 'Submit a job', security: secured,
          requestBody: {required: true, content: {'application/json': {schema: ref('PretrainJob')}, 'application/yaml': {schema: ref('PretrainJob')}}},
          responses: {201: json(ref('JobView'), 'queued'), 400: err('invalid spec: issues name each field'), 401: err('token missing or wrong'), 413: err('body over 1 MiB')}},
      },
      '/v1/jobs/{id}': {
        parameters: [idParam],
        get: {summary: 'One job', responses: {200: json(ref('JobView'), 'the job'), 404: err('no such job')}},
        delete: {summary: 'Cancel a job', security: secured, responses: {200: json(ref('JobView'), 'cancelled'), 404: err('no such job'), 409: err('already finished')}},
      },
      '/v1/jobs/{id}/metrics': {parameters: [idParam], get: {summary: 'Per-step metrics, aggregated over ranks',
        parameters: [intQuery('sinceStep', 'first step'), intQuery('limit', 'at most this many points')],
        responses: {200: json({type: 'array', items: ref('MetricPoint')}, 'points, ascending by step'), 404: err('no such job')}}},
      '/v1/jobs/{id}/checkpoints': {parameters: [idParam], get: {summary: 'Registered checkpoints',
        responses: {200: json({type: 'array', items: ref('CheckpointRecord')}, 'ascending by step'), 404: err('no such job')}}},
      '/v1/jobs/{id}/events': {parameters: [idParam], get: {summary: 'Job events: JSON list, or server-sent events (replay, then live) with Accept: text/event-stream',
        parameters: [intQuery('after', 'events with seq above this (SSE also honours Last-Event-ID)'), intQuery('limit', 'JSON only')],
        responses: {200: {description: 'events', content: {'application/json': {schema: {type: 'array', items: ref('JobEvent')}}, 'text/event-stream': {schema: {type: 'string'}}}}, 404: err('no such job')}}},
      '/v1/jobs/{id}/export': {parameters: [idParam], get: {summary: 'Online encoder of the latest good checkpoint as a PyTorch state dict',
        responses: {200: {description: 'encoder.pt', content: {'application/octet-stream': {schema: {type: 'string', contentEncoding: 'binary'}}}}, 404: err('no such job'), 409: err('no good checkpoint yet'), 429: err('too many exports running')}}},
      '/v1/workers': {get: {summary: 'Connected and known agents', responses: {200: json({type: 'array', items: ref('WorkerInfo')}, 'agents')}}},
      '/healthz': {get: {summary: 'Liveness', security: [], responses: {200: json({type: 'object'}, 'alive')}}},
      '/readyz': {get: {summary: 'Readiness: store open, gRPC and telemetry bound', security: [], responses: {200: json({type: 'object'}, 'ready'), 503: err('not ready')}}},
      '/metrics': {get: {summary: 'Prometheus metrics', responses: {200: {description: 'text exposition format', content: {'text/plain': {schema: {type: 'string'}}}}}}},
      '/openapi.json': {get: {summary: 'This document', responses: {200: json({type: 'object'}, 'OpenAPI 3.1')}}},
    },
  };
}
