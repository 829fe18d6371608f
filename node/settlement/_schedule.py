"""Payment calendars of bonds and funds: pure date arithmetic on genesis terms, no clock.

Convention (docs/ledger.md "Lifecycle"), US Treasury style:

- A coupon bond with ``coupon_freq`` f (a divisor of 12) pays on the maturity date's day
  of month every 12/f months, counting back from the maturity date; the schedule is
  every such date strictly after the issue date (the genesis date when the bond names
  none). Period 1 is the first of them, the last period ends on the maturity date.
- End-of-month rule: when the maturity date is the last day of its month, every payment
  date is the last day of its month; otherwise a day the month lacks (the 31st in June,
  the 30th in February) becomes the month's last day.
- A fund distributes monthly on ``distribution_day`` (1-28, a day every month has): period
  1 is the first such day strictly after the issue date, period k is k - 1 months later,
  up to ``SCHEDULE_PERIODS_MAX`` periods.
- Block time reaches a date at 00:00:00 UTC of that date (``day_start_ms``).

No accrual and so no day count: every period pays a full coupon, a short first period
included.
"""

from __future__ import annotations

from datetime import date, timedelta

__all__ = [
    "DAY_MS",
    "coupon_dates",
    "date_of_ms",
    "day_start_ms",
    "distribution_dates",
    "is_last_day",
]

DAY_MS = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def date_of_ms(ms: int) -> date:
    """The UTC calendar date of a time in ms since the epoch."""
    return date.fromordinal(_EPOCH_ORDINAL + ms // DAY_MS)


def day_start_ms(d: date) -> int:
    """00:00:00 UTC of ``d``: the first block time at which the date has been reached."""
    return (d.toordinal() - _EPOCH_ORDINAL) * DAY_MS


def _last_day(year: int, month: int) -> int:
    first_of_next = date(year + month // 12, month % 12 + 1, 1)
    return (first_of_next - timedelta(days=1)).day


def is_last_day(d: date) -> bool:
    return d.day == _last_day(d.year, d.month)


def _shift(anchor: date, months: int, end_of_month: bool) -> date:
    """``anchor`` moved by ``months`` calendar months, its day clamped to the month's end
    (or pinned to it under the end-of-month rule). ValueError outside years 1-9999."""
    index = anchor.year * 12 + anchor.month - 1 + months
    year, month = divmod(index, 12)
    last = _last_day(year, month + 1)
    return date(year, month + 1, last if end_of_month else min(anchor.day, last))


def coupon_dates(maturity: date, freq: int, after: date, limit: int) -> tuple[date, ...] | None:
    """Every coupon date in (``after``, ``maturity``], oldest first; None when there are
    more than ``limit`` (the caller refuses such terms)."""
    step = 12 // freq
    eom = is_last_day(maturity)
    found: list[date] = []
    while True:
        d = _shift(maturity, -step * len(found), eom)
        if d <= after:
            return tuple(reversed(found))
        if len(found) == limit:
            return None
        found.append(d)


def distribution_dates(day: int, after: date, count: int) -> tuple[date, ...]:
    """``count`` monthly dates on ``day`` (1-28), the first strictly after ``after``."""
    first = date(after.year, after.month, day)
    if first <= after:
        first = _shift(first, 1, end_of_month=False)
    return tuple(_shift(first, k, end_of_month=False) for k in range(count))
