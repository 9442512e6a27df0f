export { importConsentWorkflow } from './importConsent';
export { ingestPackageWorkflow } from './ingestPackage';
