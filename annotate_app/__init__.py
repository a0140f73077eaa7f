"""The Streamlit rating app (the paper's human protocol)."""
