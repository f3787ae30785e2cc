"""The Gradio app (:mod:`emzoo.space.app`) and its staging as a Hugging Face Space (:mod:`emzoo.space.stage`)."""
