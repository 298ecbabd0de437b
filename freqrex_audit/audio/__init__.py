"""Audio in and out (``io``), WAV header checks (``wav_header``) and the frequency view of a clip (``spectrum``)."""
