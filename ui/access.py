"""Who may use the dashboard: anyone on this machine, or, with $FRAMESEARCH_PASSWORD set (serving a
lab), whoever types it. The password is compared in constant time and kept out of the URL."""

from __future__ import annotations

import hmac

import streamlit as st

import clip_search.config as config


def allowed() -> bool:
    """True when this session may see the dashboard; otherwise draws the password box."""
    secret = config.password()
    if secret is None or st.session_state.get("signed-in"):
        return True
    st.title("Frame Search Lab")
    typed = st.text_input("Password", type="password", key="password")
    if typed:
        if hmac.compare_digest(typed.encode(), secret.encode()):
            st.session_state["signed-in"] = True
            st.session_state.pop("password", None)
            st.rerun()
        st.error("Wrong password.")
    return False
