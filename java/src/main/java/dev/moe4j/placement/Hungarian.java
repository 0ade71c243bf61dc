package dev.moe4j.placement;

import java.util.Arrays;

/** The assignment problem: a permutation of columns to rows with the least total cost (Kuhn-Munkres, O(n³)). */
final class Hungarian {
    private Hungarian() {}

    /** @return column[row] for a square cost matrix */
    static int[] solve(double[][] cost) {
        int n = cost.length;
        // potentials u (rows) and v (columns), 1-based with a virtual column 0, as in the classic formulation
        double[] u = new double[n + 1], v = new double[n + 1];
        int[] rowOfColumn = new int[n + 1], way = new int[n + 1];
        for (int row = 1; row <= n; row++) {
            rowOfColumn[0] = row;
            int column = 0;
            double[] minv = new double[n + 1];
            boolean[] used = new boolean[n + 1];
            Arrays.fill(minv, Double.POSITIVE_INFINITY);
            do {
                used[column] = true;
                int r = rowOfColumn[column], next = 0;
                double delta = Double.POSITIVE_INFINITY;
                for (int j = 1; j <= n; j++) {
                    if (used[j]) continue;
                    double reduced = cost[r - 1][j - 1] - u[r] - v[j];
                    if (reduced < minv[j]) {
                        minv[j] = reduced;
                        way[j] = column;
                    }
                    if (minv[j] < delta) {
                        delta = minv[j];
                        next = j;
                    }
                }
                for (int j = 0; j <= n; j++) {
                    if (used[j]) {
                        u[rowOfColumn[j]] += delta;
                        v[j] -= delta;
                    } else {
                        minv[j] -= delta;
                    }
                }
                column = next;
            } while (rowOfColumn[column] != 0);
            do {
                int previous = way[column];
                rowOfColumn[column] = rowOfColumn[previous];
                column = previous;
            } while (column != 0);
        }
        int[] columnOfRow = new int[n];
        for (int j = 1; j <= n; j++) columnOfRow[rowOfColumn[j] - 1] = j - 1;
        return columnOfRow;
    }
}
