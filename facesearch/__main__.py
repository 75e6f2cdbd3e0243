from facesearch.cli import app

app()
