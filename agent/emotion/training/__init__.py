"""Training the emotion models; `heartline train emotion` calls in here.

Each trainer lives in its own module and is imported where it is used, so
importing one never pulls in another's heavy dependencies.
"""
