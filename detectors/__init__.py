"""shopguard detectors: plain-Python objects with explicit per-entity state.

Each detector registers itself with `detectors.registry.register` and is
checked when it does; `registry()` finds every detector module of this
package. A detector is a small object with a frozen `Config` (its
`[detectors.TABLE]` table), explicit per-entity state, and one method,
`on_event(state, event) -> (state, signals)` (`base.Detector`). Nothing here
imports Bytewax or the engine: detectors depend only on the wire contract
(`pipeline.contract`) and on each other's helpers.

- `spam.py`, `pricing/` (gouging, fake discounts, counterfeits, on shared
  learned price levels), `text.py` (prohibited items, off-platform
  solicitation, misleading claims), `live.py` (engagement inflation),
  `orders.py` (brushing), `security.py` (account takeover, ban evasion);
- `models/`: the online river models and the per-actor features they read
  (not detectors: they issue no violations and are not registered).
"""
