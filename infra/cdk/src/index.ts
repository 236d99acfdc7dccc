export * from './batchops';
export * from './batchops-job';
