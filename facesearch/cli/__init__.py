"""The command line: `facesearch` (main.py), its `models` group (models.py) and the account a
command acts for (owners.py). It sits above everything: `facesearch up` serves the API."""
