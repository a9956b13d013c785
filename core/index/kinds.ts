/** The index kinds, apart from their native libraries, so that the config can name them without loading those. */
export const INDEX_KINDS = ['flat', 'usearch', 'hnswlib'] as const;
export type IndexKind = (typeof INDEX_KINDS)[number];
