/** The index kinds and vector precisions, apart from their libraries, so that the config can name them without loading those. */
export const INDEX_KINDS = ['flat', 'usearch', 'hnswlib'] as const;
export type IndexKind = (typeof INDEX_KINDS)[number];

/** How stored vectors keep their components: float32 exactly, or float16 (half the bytes, ~3 significant digits). */
export const VECTOR_PRECISIONS = ['float32', 'float16'] as const;
export type VectorPrecision = (typeof VECTOR_PRECISIONS)[number];
