"""The front door's web app (``storylab app``): one gradio tab per wing over the shipped checkpoints.

:mod:`storylab.app.callbacks` holds the tab callbacks (plain functions over each wing's ``panel``
module), :mod:`storylab.app.layout` the page, :mod:`storylab.app.cli` the command. gradio is
imported only when the app is built, so ``storylab --help`` stays fast.
"""
