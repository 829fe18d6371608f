"""``make demo`` (``python -m devtools.demo``): the driver is ``run.py``, each of the
bond lifecycle's steps its own module (lifecycle, freeze, reserve, lock, margin, repo,
gov, kyc), and ``console.py`` keeps the cluster up under the browser console."""
