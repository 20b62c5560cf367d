"""3D generation: Shap-E (text-to-3D and image-to-3D) through diffusers, as a mesh and a
preview. Plain Python, no Ray."""
