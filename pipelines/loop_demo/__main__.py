"""`python -m pipelines.loop_demo`: the closed-loop demo that ends `make run` (see run.py)."""

from pipelines.loop_demo.run import main

raise SystemExit(main())
