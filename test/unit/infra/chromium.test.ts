import { parseSimulatedInstall } from '../../../infra/chromium';

test('the packages apt would install, as `apt-get -s install` lists them (new ones and upgrades)', () => {
  const output = [
    'NOTE: This is only a simulation!',
    'Reading package lists...',
    'The following NEW packages will be installed:',
    '  chromium chromium-common libogg0',
    'Inst libogg0 (1.3.5-3 Debian:12.15/oldstable [amd64])',
    'Inst libudev1 [252.38-1~deb12u1] (252.39-1~deb12u2 Debian:12.15/oldstable [amd64])',
    'Inst chromium-common (156.0.8078.114-1~deb12u1 Debian-Security:12/oldstable-security [amd64])',
    'Inst chromium (156.0.8078.114-1~deb12u1 Debian-Security:12/oldstable-security [amd64])',
    'Conf libogg0 (1.3.5-3 Debian:12.15/oldstable [amd64])',
  ].join('\n');
  expect(parseSimulatedInstall(output)).toEqual([
    { name: 'libogg0', version: '1.3.5-3' },
    { name: 'libudev1', version: '252.39-1~deb12u2' },
    { name: 'chromium-common', version: '156.0.8078.114-1~deb12u1' },
    { name: 'chromium', version: '156.0.8078.114-1~deb12u1' },
  ]);
});
