from facesearch.cli.main import app

app()
