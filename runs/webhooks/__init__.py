"""Webhooks: signed POSTs of run events to endpoints admins configure (docs/WEBHOOKS.md).

- `endpoints`: each process's cached list of enabled endpoints, so that with none
  configured the engine's hot path reads nothing more;
- `recording`: the deliveries an event owes, written in the transaction that records it;
- `payloads`: what a delivery says (never run metadata);
- `targets`: the SSRF guard, at save time and again at send time;
- `signing`: the headers and the HMAC a receiver checks;
- `backoff`: when a failed delivery is tried again, a pure function;
- `transport`: one POST to the checked address, no redirects;
- `sending`: the workers' duty: claim due deliveries, send, record, disable endpoints;
- `configure`: what admins do (create, change, delete, enable, redeliver), audited.
"""
