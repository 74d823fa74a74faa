"""Machine-learning parts every network shares: ``bundle`` (a trained model as config + weights +
metadata + card, with one digest over its settings), ``training`` (seeding, learning-rate schedule,
checkpoint and resume, history), ``inference`` (threads, device, padding, sliding windows) and
``calibration`` (Platt scaling of a classifier's held-out scores, reliability tables).

Nothing here knows about radiographs, CTs or a particular network; the networks import from
here, never the other way round.
"""
