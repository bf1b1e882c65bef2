"""How a question's answer is reached from its sampled paths: the vote methods, shared ground.

`methods.py` (the `vote.method` seam: `METHODS`, `reach_votes`), `majority.py` (self-consistency majority,
the count every stage that votes shares: the vote stage, evaluation, the probe, own exemplars, debate),
`behaviour.py` (code: programs vote by what they do), `debate.py` (agents answer, read each other, answer again).
The vote stage itself is `stages/vote.py`; acquisition's judge votes through `methods.reach_votes` too.
"""
