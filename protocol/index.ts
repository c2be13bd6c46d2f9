/**
 * The wire protocol between probes and the collector: message schemas, the
 * vocabularies both ends share, limits and the version. The probe and the
 * server both stand on this folder; it imports nothing else of citymesh.
 */
export * from './wire.js';
export { checkTrainSample } from './train-check.js';
export { isStorableText, textProblem, unstorableText, clipText } from './text.js';
