"""Page helpers of the Streamlit dashboard (the only code besides dashboard.py that knows Streamlit)."""
