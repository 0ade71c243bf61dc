package dev.moe4j.testing;

import java.util.ArrayList;
import java.util.List;

/** The inputs where an e4m3 encoder goes wrong first: every code, every midpoint and its neighbours. */
public final class EdgeValues {
    private EdgeValues() {}

    public static float[] e4m3() {
        List<Float> v = new ArrayList<>();
        double[] values = Reference.E4M3_VALUES;
        for (int i = 0; i < values.length; i++) {
            addWithNeighbours(v, (float) values[i]);
            if (i + 1 < values.length) addWithNeighbours(v, (float) ((values[i] + values[i + 1]) / 2));
        }
        for (float f : new float[] {
            448f,
            464f,
            465f,
            480f,
            1e30f,
            Float.MAX_VALUE,
            Float.MIN_VALUE,
            Float.MIN_NORMAL,
            0x1p-6f,
            0x1p-9f,
            0x1p-10f,
            0x1p-11f,
            0f,
            Float.POSITIVE_INFINITY,
            Float.NaN
        }) addWithNeighbours(v, f);
        float[] out = new float[v.size() * 2];
        for (int i = 0; i < v.size(); i++) {
            out[2 * i] = v.get(i);
            out[2 * i + 1] = -v.get(i);
        }
        return out;
    }

    private static void addWithNeighbours(List<Float> v, float f) {
        v.add(f);
        if (Float.isFinite(f)) {
            v.add(Math.nextUp(f));
            v.add(Math.nextDown(f));
        }
    }
}
