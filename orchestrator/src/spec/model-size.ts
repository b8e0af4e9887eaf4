/** Parameter counts of the project's models, for checkpoint size estimates (no torch needed). */
import type {JobSpec} from '../domain/types';

// Trainable parameters of each backbone without its classifier (torchvision's layout; the CIFAR
// variants use a 3x3 stem: 1,728 instead of 9,408 weights), and the width of their output features.
const BACKBONES: Record<string, {params: number; features: number}> = {
  resnet18: {params: 11_176_512, features: 512},
  'resnet18-cifar': {params: 11_168_832, features: 512},
  resnet50: {params: 23_508_032, features: 2048},
  'resnet50-cifar': {params: 23_500_352, features: 2048},
};

/** Linear(d,h) + BN(h) + ReLU + Linear(h,o): the projector and predictor shape (paper §3.3). */
export function mlpParams(d: number, h: number, o: number): number {
  return d * h + h + 2 * h + h * o + o;
}

/** Parameters of the online encoder+projector and of the predictor. */
export function modelParams(spec: JobSpec): {encoderProjector: number; predictor: number} {
  const m = (spec.spec as any).model;
  const bb = BACKBONES[m.backbone];
  if (!bb) throw new Error(`unknown backbone ${m.backbone}`);
  const width = m.width;
  // Conv weights scale with width^2 (in and out channels); a close estimate for width != 1.
  const backbone = Math.round(bb.params * width * width);
  const features = Math.round(bb.features * width);
  const out = m.projector.outDim;
  return {
    encoderProjector: backbone + mlpParams(features, m.projector.hiddenDim, out),
    predictor: mlpParams(out, m.predictor.hiddenDim, out),
  };
}

/** model.pt (online, predictor, target) + optimizer.pt (one momentum buffer per trained param), fp32. */
export function checkpointBytesEstimate(spec: JobSpec): number {
  const {encoderProjector: e, predictor: p} = modelParams(spec);
  return 4 * (2 * e + p + (e + p));
}
