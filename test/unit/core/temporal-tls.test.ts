import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../../core/config';
import { temporalTls } from '../../../core/temporal-tls';

describe('temporalTls', () => {
  it('is plain gRPC by default', () => {
    expect(temporalTls(parseConfig({}).temporal)).toBeUndefined();
  });

  it('reads the client certificate pair for mTLS', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tttnn-tls-'));
    writeFileSync(path.join(dir, 'client.pem'), 'CERT');
    writeFileSync(path.join(dir, 'client.key'), 'KEY');
    const temporal = parseConfig({
      temporal: { tlsCertFile: path.join(dir, 'client.pem'), tlsKeyFile: path.join(dir, 'client.key') },
    }).temporal;
    const tls = temporalTls(temporal);
    expect(tls?.clientCertPair.crt.toString()).toBe('CERT');
    expect(tls?.clientCertPair.key.toString()).toBe('KEY');
  });

  it('names the field that is missing or unreadable', () => {
    expect(() => temporalTls(parseConfig({ temporal: { tlsCertFile: '/x.pem' } }).temporal)).toThrow(
      /set both for mTLS/,
    );
    expect(() =>
      temporalTls(parseConfig({ temporal: { tlsCertFile: '/nonexistent.pem', tlsKeyFile: '/x.key' } }).temporal),
    ).toThrow(/temporal\.tlsCertFile: cannot read \/nonexistent\.pem/);
  });
});
