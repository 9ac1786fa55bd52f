#!/usr/bin/env python3
"""Week-long demand traces for `coderunner-controller simulate` (CSV: timestamp,demand in CPU cores).

  scripts/bench/demand_traces.py --kind diurnal|batch|growth|flash --seed N [--out FILE] [--step 5]

Every trace is seeded (the same kind and seed give the same file) and starts on a Monday at 00:00 UTC
(pass --start-time 1788739200, 2026-09-07T00:00:00Z, to simulate so that weekdays line up). The seed varies
the scale, the shape and the noise, so that a policy tuned on some seeds can be checked on others:

- diurnal: a working-day curve (morning ramp, afternoon peak, evening fall) with quieter weekends;
- batch:   the diurnal curve plus a nightly batch job: a steep step to 5x the load at that time,
           for 40 minutes, starting within a few minutes of the same time every night;
- growth:  the diurnal curve under steady growth (the last day 1.5-2.5x the first);
- flash:   a diurnal curve with unpredictable flash crowds: 1-4 a day at random times, rising within
           5-60 s to 2-5x the load, lasting 5-30 minutes.

Noise: a slow multiplicative AR(1) wander (about 5%) and a fast per-sample jitter (about 3%).
"""
import argparse
import math
import random
import sys

WEEK = 7 * 86_400
DAY = 86_400
KINDS = ("diurnal", "batch", "growth", "flash")
# 2026-09-07T00:00:00Z, a Monday: the traces' time 0.
START_TIME = 1_788_739_200


class Shape:
    """A seeded working-day curve: demand in cores at time t (seconds from Monday 00:00)."""

    def __init__(self, rng, scale=1.0):
        self.night = rng.uniform(2.0, 5.0) * scale
        self.peak = self.night * rng.uniform(3.0, 6.0)
        self.ramp_start = rng.uniform(6.0, 8.5)    # hour the morning ramp starts
        self.ramp_hours = rng.uniform(1.5, 3.5)
        self.fall_start = rng.uniform(16.0, 19.0)  # hour the evening fall starts
        self.fall_hours = rng.uniform(3.0, 5.0)
        self.lunch_dip = rng.uniform(0.0, 0.15)
        self.weekend = rng.uniform(0.35, 0.7)      # share of the weekday swing on Saturdays and Sundays
        self.weekend_shift = rng.uniform(1.0, 3.0)  # weekends start later

    @staticmethod
    def smooth(x):
        x = min(1.0, max(0.0, x))
        return x * x * (3 - 2 * x)

    def __call__(self, t):
        day = int(t // DAY) % 7
        hour = (t % DAY) / 3600
        weekend = day >= 5
        start = self.ramp_start + (self.weekend_shift if weekend else 0)
        up = self.smooth((hour - start) / self.ramp_hours)
        down = self.smooth((hour - self.fall_start) / self.fall_hours)
        level = up * (1 - down)
        level *= 1 - self.lunch_dip * math.exp(-((hour - 12.5) ** 2) / 0.5)
        swing = (self.peak - self.night) * (self.weekend if weekend else 1.0)
        return self.night + swing * level


def generate(kind, seed, step=5):
    """[(t, demand)] for a week at `step` seconds."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    rng = random.Random(f"{kind}:{seed}")
    shape = Shape(rng)
    growth = rng.uniform(1.5, 2.5) if kind == "growth" else 1.0
    wander_sd = rng.uniform(0.03, 0.07)
    jitter_sd = rng.uniform(0.02, 0.04)

    batches = []
    if kind == "batch":
        at = rng.uniform(0.5, 4.0) * 3600
        for d in range(7):
            begin = d * DAY + at + rng.uniform(-300, 300)
            batches.append((begin, rng.uniform(10, 40)))  # start, seconds to reach the plateau
    flashes = []
    if kind == "flash":
        for d in range(7):
            for _ in range(rng.randint(1, 4)):
                begin = d * DAY + rng.uniform(0, DAY)
                rise = rng.uniform(5, 60)
                height = rng.uniform(2, 5)
                length = rng.uniform(300, 1800)
                flashes.append((begin, rise, height, length))

    out = []
    wander = 0.0
    # AR(1) with a time constant of about 20 minutes, whatever the step.
    phi = math.exp(-step / 1200)
    for i in range(WEEK // step):
        t = i * step
        base = shape(t)
        if growth != 1.0:
            base *= growth ** (t / WEEK)
        demand = base
        for begin, rise in batches:
            # A step to 5x the load for 40 minutes, reached in `rise` seconds and left as steeply.
            if begin <= t < begin + 2400 + rise:
                up = min(1.0, (t - begin) / rise)
                down = min(1.0, max(0.0, (begin + 2400 + rise - t) / rise))
                demand += base * 4 * min(up, down)
        for begin, rise, height, length in flashes:
            if begin <= t < begin + length + 600:
                if t < begin + rise:
                    f = (t - begin) / rise
                elif t < begin + length:
                    f = 1.0
                else:
                    f = math.exp(-(t - begin - length) / 120)
                demand += base * (height - 1) * f
        wander = phi * wander + math.sqrt(1 - phi * phi) * rng.gauss(0, wander_sd)
        demand *= max(0.0, 1 + wander + rng.gauss(0, jitter_sd))
        out.append((t, max(0.0, demand)))
    return out


def write(path, points):
    with open(path, "w") as f:
        f.write("timestamp,demand\n")
        for t, d in points:
            f.write(f"{t},{d:.4f}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=KINDS, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--step", type=int, default=5, help="seconds between rows (default 5)")
    ap.add_argument("--out", help="CSV file to write (default: stdout)")
    args = ap.parse_args()
    points = generate(args.kind, args.seed, args.step)
    if args.out:
        write(args.out, points)
    else:
        sys.stdout.write("timestamp,demand\n")
        for t, d in points:
            sys.stdout.write(f"{t},{d:.4f}\n")


if __name__ == "__main__":
    main()
