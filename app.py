"""CallMark's entry point: `python app.py` serves it, `gunicorn app:app` and `flask --app app` use it."""
if __name__ == "__main__":
    from blocklist.run.launcher import main

    main()
else:
    from blocklist.web import create_app

    app = create_app()
