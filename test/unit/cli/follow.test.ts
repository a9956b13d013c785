import { ServiceError } from '@temporalio/client';
import { followWorkflow, workflowResult, formatDuration, stageEta } from '../../../cli/follow';

const later = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

describe('followWorkflow', () => {
  it('draws one frame at a time while waiting, one last frame after the result, then finishes', async () => {
    const events: string[] = [];
    let drawing = 0;
    const draw = async () => {
      drawing += 1;
      expect(drawing).toBe(1); // never two draws at once
      events.push('draw');
      await later(3, undefined);
      drawing -= 1;
    };
    const value = await followWorkflow(
      { result: () => later(60, 'summary') },
      {
        draw,
        finish: () => events.push('finish'),
        intervalMs: 10,
      },
    );
    expect(value).toBe('summary');
    expect(events.filter((e) => e === 'draw').length).toBeGreaterThanOrEqual(3);
    expect(events.slice(-2)).toEqual(['draw', 'finish']);
  });

  it('keeps drawing when a query fails, and finishes when the workflow fails', async () => {
    let draws = 0;
    let finished = false;
    const failing = () => later(30, undefined).then(() => Promise.reject(new Error('workflow failed')));
    await expect(
      followWorkflow(
        { result: failing },
        {
          draw: () => {
            draws += 1;
            return Promise.reject(new Error('no worker yet'));
          },
          finish: () => (finished = true),
          intervalMs: 5,
        },
      ),
    ).rejects.toThrow('workflow failed');
    expect(draws).toBeGreaterThanOrEqual(2);
    expect(finished).toBe(true);
  });

  it('only waits when progress is off', async () => {
    expect(await followWorkflow({ result: () => Promise.resolve(7) }, undefined)).toBe(7);
  });

  it('waits through transient server errors (a late long poll, a restart), not through others', async () => {
    // As the client throws them: a ServiceError around the gRPC error, which carries the status code.
    const grpcError = (code: number) => Object.assign(new Error(`status ${code}`), { code });
    const transient = (code: number) =>
      new ServiceError('Failed to get Workflow execution history', { cause: grpcError(code) });
    const answers = [transient(4), transient(14), 'summary'];
    let calls = 0;
    const result = () => {
      const answer = answers[calls++]!;
      return typeof answer === 'string' ? Promise.resolve(answer) : Promise.reject(answer);
    };
    expect(await workflowResult({ result }, 1)).toBe('summary');
    expect(calls).toBe(3);
    const notFound = new ServiceError('workflow not found', { cause: grpcError(5) });
    await expect(workflowResult({ result: () => Promise.reject(notFound) }, 1)).rejects.toBe(notFound);
  });
});

test("a stage's ETA comes from its own rate since it was first seen: a dash until work is done, never INF or NaN", () => {
  let clock = 0;
  const eta = stageEta(() => clock);
  expect(eta(40, 100)).toBe('—'); // resumed at 40: no rate yet
  clock = 10_000;
  expect(eta(40, 100)).toBe('—'); // nothing done in 10 s
  clock = 20_000;
  expect(eta(50, 100)).toBe('1m40s'); // 10 items in 20 s: 50 left at 0.5/s
  clock = 30_000;
  expect(eta(100, 100)).toBe('0s');
  expect([formatDuration(0.4), formatDuration(59), formatDuration(61), formatDuration(7_500)]).toEqual([
    '0s',
    '59s',
    '1m01s',
    '2h05m',
  ]);
});
