export { importConsentWorkflow } from './importConsent';
export { ingestPackageWorkflow } from './ingestPackage';
export { rotateStudyKeyWorkflow } from './rotateStudyKey';
export { withdrawConsentWorkflow } from './withdrawConsent';
export { reidentifyWorkflow } from './reidentify';
export { rePseudonymizeDatasetWorkflow } from './rePseudonymizeDataset';
export { catalogWriterWorkflow } from './catalogWriter';
