import type { SubjectPlace } from '../../schemas/subject-request';

/** An item's id in an erasure request: a table of a dataset, or a study's consent registry or vault. Pure. */
export function itemIdOf(place: SubjectPlace): string {
  switch (place.kind) {
    case 'dataset':
      return `${place.datasetId}/${place.table}`;
    case 'export':
      return `export/${place.requestId}`;
    case 'upload':
      return `upload/${place.role}/${place.packageId ?? place.prefix}`;
    default:
      return `${place.kind}/${place.studyId}`;
  }
}

/** A place in words, for certificates and the DPO. Pure. */
export function describePlace(place: SubjectPlace): string {
  switch (place.kind) {
    case 'dataset':
      return `dataset ${place.datasetId} table ${place.table} (s3://${place.bucket}/${place.key}): ${place.rows} rows`;
    case 'consent':
      return `consent registry of study ${place.studyId}: ${place.records} records`;
    case 'vault':
      return `re-identification vault of study ${place.studyId}: ${place.entries} entries`;
    case 'export':
      return `access package of request ${place.requestId} (s3://${place.bucket}/${place.prefix})`;
    case 'upload':
      return `raw upload in ${place.role} (s3://${place.bucket}/${place.prefix}): ${place.files} files name the subject`;
  }
}
