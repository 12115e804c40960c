// A generated image played like an instrument (seed 001): each beat kicks it (a punch
// of zoom and light; every onset a smaller flash), and the harsher the sound (a bright,
// noisy spectrum), the colder and spikier it gets: its colour turns toward ice blue and
// its edges are sharpened into spikes; a mellow sound leaves it warm and soft.
uniform sampler2D image;
uniform float beat;     // 1 on a beat, fading
uniform float onset;    // 1 on an onset, fading
uniform float harsh;    // 0 (mellow) .. 1 (harsh)
uniform float level;    // loudness 0..1
uniform vec2 image_size;

// The frame's uv to the image's, filling the frame with the image, aspect kept (the
// overflow is cropped): a square image on a 16:9 screen loses its top and bottom.
vec2 cover(vec2 uv, vec2 size) {
    float frame = iResolution.x / iResolution.y;
    float pic = size.y > 0.0 ? size.x / size.y : frame;
    vec2 s = frame > pic ? vec2(1.0, pic / frame) : vec2(frame / pic, 1.0);
    return (uv - 0.5) * s + 0.5;
}

vec3 sample_at(vec2 p) {
    return texture(image, clamp(p, 0.0, 1.0)).rgb;
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 uv = cover(fragCoord / iResolution.xy, image_size);
    // The punch: zoom in on the beat, a little shake on onsets.
    vec2 c = uv - 0.5;
    c /= 1.0 + (0.02 + 0.14 * level) * beat + 0.04 * level;     // harder the louder
    c += 0.004 * onset * level * vec2(sin(iTime * 91.0), cos(iTime * 77.0));
    vec2 p = c + 0.5;
    vec3 col = sample_at(p);
    // Spikes: an unsharp mask that grows with harshness.
    vec2 px = 0.75 / max(image_size, vec2(1.0));     // under one pixel of the image
    vec3 blur = 0.25 * (sample_at(p + vec2(px.x, 0.0)) + sample_at(p - vec2(px.x, 0.0)) +
                        sample_at(p + vec2(0.0, px.y)) + sample_at(p - vec2(0.0, px.y)));
    col += (col - blur) * (0.2 + 4.0 * harsh * (0.3 + 0.7 * level));
    // Cold when harsh, warm when mellow.
    float luma = dot(col, vec3(0.299, 0.587, 0.114));
    vec3 cold = vec3(0.55, 0.8, 1.25) * luma * 1.3;
    vec3 warm = col * vec3(1.12, 1.0, 0.86);
    col = mix(warm, cold, smoothstep(0.3, 0.9, harsh));
    // Light on the beat, and a vignette that opens with the loudness.
    col *= 0.8 + (0.5 + 1.0 * level) * beat + 0.2 * level + 0.8 * onset * (0.4 + 0.6 * level);
    col *= 1.0 - 0.55 * smoothstep(0.35, 0.85, length(c) * (1.3 - 0.4 * level));
    fragColor = vec4(max(col, 0.0), 1.0);
}
