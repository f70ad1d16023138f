"""Training and evaluating the emotion models: data set readers, scores, trainers.

`heartline train emotion` and `heartline eval emotion` call in here. Each
trainer lives in its own module and is imported where it is used, so
importing one never pulls in another's heavy dependencies.
"""
