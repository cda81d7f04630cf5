"""CallMark's entry point: `python app.py` serves it, `gunicorn app:app` and `flask --app app` use it."""
if __name__ == "__main__":
    from blocklist.launcher import prepare_metrics

    prepare_metrics()  # before anything imports prometheus_client: its workers share the folder

from blocklist import create_app  # noqa: E402

app = create_app()

if __name__ == "__main__":
    from blocklist.launcher import serve

    serve(app)
