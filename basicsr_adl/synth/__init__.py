"""Source-domain synthesis for ADL beyond denoising: camera-shake blur and atmospheric haze (no BasicSR import)."""
