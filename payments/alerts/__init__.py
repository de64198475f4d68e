"""Alerts (issue #18): tell an account's owners and accountants when funds
run low, the month goes over budget, a period settles Overdrawn, an email
pack runs low or expires, or a repayment waits for its wire transfer.

- ``conditions``: what holds now (reads only): one ``Condition`` per (kind,
  subject) whose limit is crossed at ``now``.
- ``services``: ``alerts_evaluate`` compares the conditions with the
  account's active alerts under the account's row lock: a new condition is
  a new ``Alert`` (crossing number + 1) with one ``AlertEmail`` per
  recipient; an active alert whose condition stopped is cleared. Settings
  and per-user opt-out are written here too.
- ``emails``: ``alert_email_send`` sends one recipient's email once (row
  locked while sending, ``sent_at`` on success; a transport failure is
  recorded and raised as AlertEmailError so the task retries with backoff).

The rules are in docs/alerts.md.
"""
