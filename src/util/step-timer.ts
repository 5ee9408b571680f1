// Where the time of a multi-step operation goes (`dadi run --timings`, the daemon's mount log):
// each lap closes one named step at the current time. Steps measured elsewhere (the daemon's
// mount, reported over the socket) are added as they came, under a prefix.

export interface TimedStep {
  step: string;
  ms: number;
}

export class StepTimer {
  readonly steps: TimedStep[] = [];
  private last: number;

  /** `start`: a performance.now() value the first step counts from (default: now). */
  constructor(start = performance.now()) {
    this.last = start;
  }

  /** Close the step running since the last lap, as `step`. */
  lap(step: string): void {
    const now = performance.now();
    this.steps.push({ step, ms: round(now - this.last) });
    this.last = now;
  }

  /** Record steps measured elsewhere, as parts of the last step (not added to the total). */
  detail(prefix: string, steps: readonly TimedStep[] | undefined): void {
    for (const s of steps ?? []) this.steps.push({ step: `${prefix}: ${s.step}`, ms: s.ms });
  }

  /** `step 12 ms, step 3 ms, …`. */
  format(): string {
    return formatSteps(this.steps);
  }
}

export function formatSteps(steps: readonly TimedStep[]): string {
  return steps.map((s) => `${s.step} ${s.ms} ms`).join(', ');
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
