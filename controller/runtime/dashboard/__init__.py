"""The read-only rollout dashboard served by the controller: overview, one page per
rollout with canary-vs-stable charts, the verdict timeline and the commits; built
from the status document and the notes journal (`view`, pure), rendered on the
server (`pages`), guarded by a token (`auth`), drawn by the bundled uPlot."""
