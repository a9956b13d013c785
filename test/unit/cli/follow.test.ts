import { followWorkflow } from '../../../cli/follow';

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
    const value = await followWorkflow(later(60, 'summary'), {
      draw,
      finish: () => events.push('finish'),
      intervalMs: 10,
    });
    expect(value).toBe('summary');
    expect(events.filter((e) => e === 'draw').length).toBeGreaterThanOrEqual(3);
    expect(events.slice(-2)).toEqual(['draw', 'finish']);
  });

  it('keeps drawing when a query fails, and finishes when the workflow fails', async () => {
    let draws = 0;
    let finished = false;
    const failing = later(30, undefined).then(() => Promise.reject(new Error('workflow failed')));
    await expect(
      followWorkflow(failing, {
        draw: () => {
          draws += 1;
          return Promise.reject(new Error('no worker yet'));
        },
        finish: () => (finished = true),
        intervalMs: 5,
      }),
    ).rejects.toThrow('workflow failed');
    expect(draws).toBeGreaterThanOrEqual(2);
    expect(finished).toBe(true);
  });

  it('only waits when progress is off', async () => {
    expect(await followWorkflow(Promise.resolve(7), undefined)).toBe(7);
  });
});
