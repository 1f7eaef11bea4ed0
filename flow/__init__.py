"""The way a request travels from the sidebar, the API or the CLI to the scene, in the order it goes:

1. settings: the scene's settings and the caller's options become a checked request (nothing runs yet);
2. start: the request goes to the worker thread with a post-processing step that writes the files;
3. runner: on Blender's main thread a tick applies each finished job to the scene (files first, scene
   second; a timer in the UI, a pumped loop in background mode).

installs holds the other background work the preferences show: the dependency install, model downloads
and the self-test.
"""
