"""``python -m service.cli``: how tests and the fault harness start the API and workers."""

from service.cli import main

main()
