"""The processes that run CallMark, apart from the app and the domain: the launcher
(`python app.py`), the scheduler beside it, and the operator commands (`flask --app app …`)."""
