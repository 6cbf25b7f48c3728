"""Judges of a routed answer against the reference answer: one implementation per module."""

from .base import SCORE, Answer, Judge, Pair, Verdict
from .checks import ChecksJudge
from .pairwise import PairwiseJudge

__all__ = ["SCORE", "Answer", "ChecksJudge", "Judge", "Pair", "PairwiseJudge", "Verdict"]
