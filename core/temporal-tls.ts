import { readFileSync } from 'node:fs';
import { type Config, ConfigError } from './config';

export interface TemporalTls {
  clientCertPair: { crt: Buffer; key: Buffer };
}

/**
 * The mTLS options of a Temporal connection (Temporal Cloud), from `temporal.tlsCertFile` and `temporal.tlsKeyFile`;
 * undefined (plain gRPC) when neither is set. The files are read at connect time, so a rotated certificate is taken
 * by the next process start.
 */
export function temporalTls(temporal: Config['temporal']): TemporalTls | undefined {
  const { tlsCertFile, tlsKeyFile } = temporal;
  if (tlsCertFile === '' && tlsKeyFile === '') return undefined;
  if (tlsCertFile === '' || tlsKeyFile === '') {
    throw new ConfigError('temporal.tlsCertFile and temporal.tlsKeyFile: set both for mTLS, or neither');
  }
  const read = (file: string, field: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`temporal.${field}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  return { clientCertPair: { crt: read(tlsCertFile, 'tlsCertFile'), key: read(tlsKeyFile, 'tlsKeyFile') } };
}
