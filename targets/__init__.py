"""The system under test: the defense stack and the simulated company it protects.

Never imports ``attackers``, ``sim`` or ``evolve``: the defense must not know the attack code.
"""
